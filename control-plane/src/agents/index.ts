import { and, desc, eq, isNotNull } from "drizzle-orm";
import { sha256 } from "../auth/tokens.ts";
import type { Database, Executor } from "../db/index.ts";
import { workspaceAgents, workspaces } from "../db/schema.ts";

export type Agent = typeof workspaceAgents.$inferSelect;
export type LifecycleState = Agent["lifecycleState"];
export const lifecycleStates = workspaceAgents.lifecycleState.enumValues;

/** The agent a daemon's token belongs to, if the token is current and its workspace still exists. */
export async function authenticate(db: Database, token: string): Promise<Agent | null> {
  // Kiln's own tokens, or the UUIDs an older Coder provider mints itself (recorded by the build).
  if (!token.startsWith("kiln-agent_") && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(token)) return null;
  const [row] = await db.select({ agent: workspaceAgents }).from(workspaceAgents)
    .innerJoin(workspaces, eq(workspaces.id, workspaceAgents.workspaceId))
    .where(and(eq(workspaceAgents.tokenHash, sha256(token)), eq(workspaces.deleted, false))).limit(1);
  return row?.agent ?? null;
}

/** Creates the agent of a start build; every older agent of the workspace loses its token. Returns revoked agent ids. */
export async function createForBuild(executor: Executor, input: { workspaceId: string; buildId: string; tokenHash: string; directory?: string }): Promise<{ agent: Agent; revoked: string[] }> {
  const revoked = await revokeAll(executor, input.workspaceId);
  const [agent] = await executor.insert(workspaceAgents).values({
    workspaceId: input.workspaceId, buildId: input.buildId, tokenHash: input.tokenHash, directory: input.directory ?? null,
  }).returning();
  return { agent: agent!, revoked };
}

export async function revokeAll(executor: Executor, workspaceId: string): Promise<string[]> {
  const rows = await executor.update(workspaceAgents).set({ tokenHash: null })
    .where(and(eq(workspaceAgents.workspaceId, workspaceId), isNotNull(workspaceAgents.tokenHash)))
    .returning({ id: workspaceAgents.id });
  return rows.map((row) => row.id);
}

/** The newest agent of a workspace, whether or not its token is still valid. */
export async function latestForWorkspace(db: Database, workspaceId: string): Promise<Agent | null> {
  const [agent] = await db.select().from(workspaceAgents).where(eq(workspaceAgents.workspaceId, workspaceId)).orderBy(desc(workspaceAgents.createdAt)).limit(1);
  return agent ?? null;
}

export async function update(db: Database, agentId: string, values: Partial<Pick<Agent, "lifecycleState" | "connectedAt" | "disconnectedAt" | "lastSeenAt" | "version" | "operatingSystem" | "architecture" | "directory" | "startedAt" | "readyAt">>): Promise<void> {
  await db.update(workspaceAgents).set(values).where(eq(workspaceAgents.id, agentId));
}
