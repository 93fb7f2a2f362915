import { DAEMON_SSH_PORTS, DAEMON_TAILNET_PORTS } from "@kiln/tailnet";
import { eq } from "drizzle-orm";
import type { Agent } from "../agents/index.ts";
import type { DatabaseHandle } from "../db/index.ts";
import { workspaceAgents, workspaces } from "../db/schema.ts";
import { ConflictError, UnauthorizedError, ValidationError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import type { ControlPlaneTailnet, TailnetJoin } from "./index.ts";

/** Replicas tell each other that an agent's endpoint changed ("<agent id> <address or ->"), so none dials a stale one. */
export const TAILNET_ENDPOINTS_CHANNEL = "kiln_tailnet_endpoints";

export type TailnetReport = { address: string; port: number; ssh_port?: number } | { error: string };

interface Context {
  database: DatabaseHandle;
  tailnet?: ControlPlaneTailnet;
  log: Logger;
}

/** A key for the agent's build to join with; 409 when the deployment has no tailnet. */
export async function join(context: Context, agent: Agent): Promise<TailnetJoin> {
  const { tailnet, log } = context;
  if (!tailnet) throw new ConflictError("tailnet_disabled", "this deployment has no tailnet; stay on the relay");
  const workspace = await workspaceOf(context, agent);
  const material = await tailnet.joinFor({ id: agent.id, workspaceName: workspace.name, ownerId: workspace.ownerId });
  log.info({ agentId: agent.id, workspaceId: agent.workspaceId }, "agent tailnet key issued");
  return material;
}

/**
 * Records where the daemon serves on the tailnet, once the address is proven to be its own node (an agent token
 * must not point the control plane, or node removal, at another node); or why it could not join.
 */
export async function report(context: Context, agent: Agent, body: TailnetReport): Promise<void> {
  const { database, tailnet, log } = context;
  if (!tailnet) throw new ConflictError("tailnet_disabled", "this deployment has no tailnet; stay on the relay");
  const workspace = await workspaceOf(context, agent);
  const identity = { id: agent.id, workspaceName: workspace.name };
  if ("error" in body) {
    // Sent when (re)joining failed: any endpoint it had is gone with its old node.
    await database.db.update(workspaceAgents).set({ tailnetError: body.error, tailnetAddress: null, tailnetPort: null, tailnetSshPort: null }).where(eq(workspaceAgents.id, agent.id));
    tailnet.transport.unregister(agent.id);
    void tailnet.removeAgentNodes(identity);
    await database.notify(TAILNET_ENDPOINTS_CHANNEL, `${agent.id} -`);
    log.warn({ agentId: agent.id, error: body.error }, "agent could not join the tailnet");
    return;
  }
  for (const [field, value, range] of [["port", body.port, DAEMON_TAILNET_PORTS], ["ssh_port", body.ssh_port, DAEMON_SSH_PORTS]] as const) {
    if (value !== undefined && (value < range.first || value > range.last)) invalid(field, `must be in ${range.first}-${range.last}, the range the ACL policy allows`);
  }
  if (body.ssh_port !== undefined && !tailnet.deviceSsh) invalid("ssh_port", "device SSH is off on this deployment");
  if (!(await tailnet.isAgentNode(identity, body.address))) invalid("address", "is not the tailnet address of the node this agent joined as");
  await database.db.update(workspaceAgents).set({ tailnetAddress: body.address, tailnetPort: body.port, tailnetSshPort: body.ssh_port ?? null, tailnetError: null, tailnetJoinedAt: new Date() })
    .where(eq(workspaceAgents.id, agent.id));
  tailnet.register(agent.id, { address: body.address, port: body.port });
  // A daemon that rejoined (its tailscaled restarted) left its old node behind.
  if (agent.tailnetAddress && agent.tailnetAddress !== body.address) void tailnet.removeAgentNodes(identity, body.address);
  await database.notify(TAILNET_ENDPOINTS_CHANNEL, `${agent.id} ${body.address}`);
  log.info({ agentId: agent.id, address: body.address, port: body.port }, "agent joined the tailnet");
}

function invalid(field: string, reason: string): never {
  throw new ValidationError(`${field}: ${reason}`, { field, reason });
}

async function workspaceOf(context: Context, agent: Agent): Promise<{ name: string; ownerId: string }> {
  const [workspace] = await context.database.db.select({ name: workspaces.name, ownerId: workspaces.ownerId }).from(workspaces).where(eq(workspaces.id, agent.workspaceId));
  if (!workspace) throw new UnauthorizedError("the agent's workspace is gone");
  return workspace;
}
