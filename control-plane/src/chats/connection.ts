import type { AgentConnection, Tunnel } from "../api/context.ts";
import type { Actor } from "../auth/index.ts";
import type { Database } from "../db/index.ts";
import { connect } from "../workspaces/connect.ts";

/** Reaches a chat's workspace as the chat's owner, so a chat can never touch someone else's workspace. */
export function connectToWorkspace(db: Database, tunnel: Tunnel, owner: Actor, workspaceId: string): Promise<AgentConnection> {
  return connect(db, tunnel, owner, workspaceId, { timeoutMs: 30_000 });
}
