import type { AgentDefinition } from "@kiln/provisioner/terraform";
import type { AgentConfig, AgentLogEntry, AgentMetadataResult, AgentScriptRun } from "@kiln/workspace-daemon/agent-protocol";
import { and, asc, desc, eq, sql } from "drizzle-orm";
import type { Database, DatabaseHandle, Executor } from "../db/index.ts";
import { workspaceAgentLogs, workspaceAgentMetadata, workspaceAgentScriptRuns, workspaceAgents } from "../db/schema.ts";

/** NOTIFY channel for new agent log lines (payload: agent id), so followers wake up. */
export const AGENT_LOGS_CHANNEL = "kiln_agent_logs";

export const EMPTY_CONFIG: AgentConfig = { directory: null, env: {}, scripts: [], metadata: [] };

/** What the daemon runs, from a build's coder_agent. */
export function configOf(definition: AgentDefinition | undefined): AgentConfig {
  if (!definition) return EMPTY_CONFIG;
  return {
    directory: definition.directory || null,
    env: definition.env,
    scripts: definition.scripts.map((script, index) => ({
      display_name: script.display_name || `script-${index + 1}`,
      script: script.script,
      run_on_start: script.run_on_start,
      run_on_stop: script.run_on_stop,
      start_blocks_login: script.start_blocks_login,
      timeout_seconds: Math.max(0, Math.round(script.timeout)),
      cron: script.cron,
      log_path: script.log_path,
    })),
    metadata: definition.metadata.map((item) => ({
      key: item.key, display_name: item.display_name, script: item.script,
      interval_seconds: Math.max(1, Math.round(item.interval)), timeout_seconds: Math.max(1, Math.round(item.timeout)),
    })),
  };
}

export async function setConfig(executor: Executor, agentId: string, values: { name?: string; config: AgentConfig }): Promise<void> {
  await executor.update(workspaceAgents).set({ config: values.config, ...(values.name ? { name: values.name } : {}) }).where(eq(workspaceAgents.id, agentId));
}

export async function appendLogs(database: DatabaseHandle, agentId: string, logs: AgentLogEntry[]): Promise<void> {
  if (logs.length === 0) return;
  await database.db.insert(workspaceAgentLogs).values(logs.map((entry) => ({
    agentId, source: entry.source, level: entry.level, output: entry.output, createdAt: validDate(entry.created_at),
  })));
  await database.notify(AGENT_LOGS_CHANNEL, agentId);
}

export async function recordMetadata(db: Database, agentId: string, results: AgentMetadataResult[]): Promise<void> {
  // The newest result per key wins; a batch may carry several rounds.
  const latest = new Map<string, AgentMetadataResult>();
  for (const result of results) latest.set(result.key, result);
  if (latest.size === 0) return;
  await db.insert(workspaceAgentMetadata).values([...latest.values()].map((result) => ({
    agentId, key: result.key, value: result.value, error: result.error, collectedAt: validDate(result.collected_at),
  }))).onConflictDoUpdate({
    target: [workspaceAgentMetadata.agentId, workspaceAgentMetadata.key],
    set: { value: sql`excluded.value`, error: sql`excluded.error`, collectedAt: sql`excluded.collected_at` },
  });
}

export async function recordScriptRuns(db: Database, agentId: string, runs: AgentScriptRun[]): Promise<void> {
  if (runs.length === 0) return;
  await db.insert(workspaceAgentScriptRuns).values(runs.map((run) => ({
    agentId, script: run.script, stage: run.stage, status: run.status, exitCode: run.exit_code,
    startedAt: validDate(run.started_at), endedAt: validDate(run.ended_at),
  })));
}

export async function logsAfter(db: Database, agentId: string, afterId: number, limit = 1000) {
  return db.select().from(workspaceAgentLogs)
    .where(and(eq(workspaceAgentLogs.agentId, agentId), sql`${workspaceAgentLogs.id} > ${afterId}`))
    .orderBy(asc(workspaceAgentLogs.id)).limit(limit);
}

export async function metadataOf(db: Database, agentId: string) {
  return db.select().from(workspaceAgentMetadata).where(eq(workspaceAgentMetadata.agentId, agentId)).orderBy(asc(workspaceAgentMetadata.key));
}

export async function scriptRunsOf(db: Database, agentId: string) {
  return db.select().from(workspaceAgentScriptRuns).where(eq(workspaceAgentScriptRuns.agentId, agentId)).orderBy(desc(workspaceAgentScriptRuns.id)).limit(200);
}

/** A daemon's clock may be off or its value garbage; never store an invalid date. */
function validDate(value: string): Date {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? new Date() : date;
}
