import type { AgentConnection, Tunnel } from "../api/context.ts";
import * as Agents from "../agents/index.ts";
import type { Actor } from "../auth/index.ts";
import type { Database } from "../db/index.ts";
import { ConflictError, KilnError } from "../errors.ts";
import { find } from "./index.ts";

/** A live connection to a workspace's agent, for someone allowed to use that workspace. */
export async function connect(db: Database, tunnel: Tunnel, actor: Actor, reference: string, options: { timeoutMs?: number } = {}): Promise<AgentConnection> {
  const workspace = await find(db, actor, reference);
  const agent = await Agents.latestForWorkspace(db, workspace.id);
  if (!agent || agent.tokenHash === null) {
    throw new ConflictError("workspace_not_running", `workspace '${workspace.name}' is not running; start it with 'kiln start ${workspace.name}'`, { workspace: workspace.name });
  }
  try {
    return await tunnel.dial(agent.id, { timeoutMs: options.timeoutMs ?? 5_000 });
  } catch (error) {
    throw new KilnError("agent_unreachable", `the agent of workspace '${workspace.name}' is not connected (lifecycle: ${agent.lifecycleState}); it may still be starting`, 503, {
      workspace: workspace.name, lifecycle_state: agent.lifecycleState, cause: error instanceof Error ? error.message : String(error),
    });
  }
}
