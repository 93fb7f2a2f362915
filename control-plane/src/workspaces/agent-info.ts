import type { AgentConfig } from "@kiln/workspace-daemon/agent-protocol";
import { and, desc, eq, isNotNull } from "drizzle-orm";
import * as Agents from "../agents/index.ts";
import * as AgentDuties from "../agents/duties.ts";
import type { Actor } from "../auth/index.ts";
import type { Database } from "../db/index.ts";
import { templateVersions, workspaceBuilds } from "../db/schema.ts";
import { find, type Connectivity } from "./index.ts";

/** What the workspace's build made and what its agent is doing: resources, scripts and their runs, metadata. */
export async function agentInfo(db: Database, connectivity: Connectivity, actor: Actor, reference: string) {
  const workspace = await find(db, actor, reference);
  const agent = await Agents.latestForWorkspace(db, workspace.id);
  const [built] = await db.select({ buildNumber: workspaceBuilds.buildNumber, resources: workspaceBuilds.resources, versionAgents: templateVersions.agents }).from(workspaceBuilds)
    .innerJoin(templateVersions, eq(templateVersions.id, workspaceBuilds.templateVersionId))
    .where(and(eq(workspaceBuilds.workspaceId, workspace.id), isNotNull(workspaceBuilds.resources)))
    .orderBy(desc(workspaceBuilds.buildNumber)).limit(1);
  const config = (agent?.config ?? null) as AgentConfig | null;
  const definition = ((built?.versionAgents ?? []) as { name: string; apps?: unknown[] }[]).find((candidate) => candidate.name === agent?.name);
  return {
    workspace_id: workspace.id,
    build_number: built?.buildNumber ?? null,
    resources: (built?.resources ?? []) as Record<string, unknown>[],
    agent: agent ? {
      id: agent.id,
      name: agent.name,
      lifecycle_state: agent.lifecycleState,
      connected: agent.tokenHash !== null && connectivity.isConnected(agent.id),
      version: agent.version,
      operating_system: agent.operatingSystem,
      architecture: agent.architecture,
      directory: config?.directory ?? agent.directory,
      started_at: agent.startedAt?.toISOString() ?? null,
      ready_at: agent.readyAt?.toISOString() ?? null,
      tailnet: agent.tailnetAddress && agent.tailnetPort ? { address: agent.tailnetAddress, port: agent.tailnetPort, ssh_port: agent.tailnetSshPort, joined_at: agent.tailnetJoinedAt?.toISOString() ?? null } : null,
      tailnet_error: agent.tailnetError,
      scripts: (config?.scripts ?? []).map((script) => ({
        display_name: script.display_name, run_on_start: script.run_on_start, run_on_stop: script.run_on_stop,
        start_blocks_login: script.start_blocks_login, timeout_seconds: script.timeout_seconds, cron: script.cron,
      })),
      apps: (definition?.apps ?? []) as Record<string, unknown>[],
      metadata: await (async () => {
        const values = new Map((await AgentDuties.metadataOf(db, agent.id)).map((row) => [row.key, row]));
        return (config?.metadata ?? []).map((item) => {
          const value = values.get(item.key);
          return { key: item.key, display_name: item.display_name, value: value?.value ?? null, error: value?.error ?? null, collected_at: value?.collectedAt.toISOString() ?? null };
        });
      })(),
      script_runs: (await AgentDuties.scriptRunsOf(db, agent.id)).map((run) => ({
        script: run.script, stage: run.stage, status: run.status, exit_code: run.exitCode, started_at: run.startedAt.toISOString(), ended_at: run.endedAt.toISOString(),
      })),
    } : null,
  };
}
