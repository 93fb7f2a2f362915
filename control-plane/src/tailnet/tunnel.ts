import { TunnelError, type AgentConnection, type DialOptions, type RelayServer } from "@kiln/tailnet";
import { eq } from "drizzle-orm";
import type { Tunnel } from "../api/context.ts";
import type { Database } from "../db/index.ts";
import { workspaceAgents, workspaces } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import type { ControlPlaneTailnet } from "./index.ts";

/** How a connection reaches its agent. */
export type TunnelPath = { via: "relay" } | { via: "tailnet"; address: string; port: number };

/** With fallback allowed, how long a tailnet dial may take before the relay is tried instead. */
const TAILNET_DIAL_BUDGET_MS = 3_000;
/** After a failed tailnet dial (with fallback allowed), the agent is served over the relay this long before the tailnet is tried again. */
const TAILNET_RETRY_AFTER_MS = 30_000;
/** How long "no tailnet endpoint in the database" is believed when no NOTIFY says otherwise. */
const NO_ENDPOINT_RECHECK_MS = 30_000;

/**
 * The one tunnel the API, the chat loop and interactive access use. Without a tailnet it is the relay. With
 * one, an agent that reported a tailnet endpoint (to this replica, or to another: endpoints live in the
 * database) is dialed over the tailnet; the relay serves the rest when the deployment allows fallback.
 */
export class WorkspaceTunnel implements Tunnel {
  readonly #relay: RelayServer;
  readonly #tailnet: ControlPlaneTailnet | undefined;
  readonly #db: Database;
  readonly #relayFallback: boolean;
  readonly #log: Logger;
  readonly #paths = new WeakMap<AgentConnection, TunnelPath>();
  /** Agents whose tailnet endpoint failed recently: which address, and when to try it again (fallback only). */
  readonly #tailnetDown = new Map<string, { address: string; until: number }>();
  /**
   * Agents the database had no endpoint for, and when to look again: with fallback, a relay-only agent's every
   * call would otherwise cost a query. A report (NOTIFY, any replica) clears the entry at once.
   */
  readonly #noEndpointUntil = new Map<string, number>();

  constructor(options: { relay: RelayServer; tailnet?: ControlPlaneTailnet; db: Database; relayFallback: boolean; log: Logger }) {
    this.#relay = options.relay;
    this.#tailnet = options.tailnet;
    this.#db = options.db;
    this.#relayFallback = options.relayFallback;
    this.#log = options.log;
  }

  isConnected(agentId: string): boolean {
    return this.#relay.isConnected(agentId) || (this.#tailnet?.transport.isConnected(agentId) ?? false);
  }

  /** The path a connection this tunnel dialed takes. */
  pathOf(connection: AgentConnection): TunnelPath {
    return this.#paths.get(connection) ?? { via: "relay" };
  }

  async dial(agentId: string, options: DialOptions = {}): Promise<AgentConnection> {
    const tailnet = this.#tailnet;
    if (!tailnet) return this.#relay.dial(agentId, options);
    const deadline = Date.now() + (options.timeoutMs ?? 5_000);
    const remaining = () => Math.max(1, deadline - Date.now());
    let endpoint: { address: string; port: number } | undefined = tailnet.transport.endpoint(agentId);
    if (!endpoint && (this.#noEndpointUntil.get(agentId) ?? 0) <= Date.now()) {
      endpoint = await this.#load(agentId);
      if (endpoint) this.#noEndpointUntil.delete(agentId);
      else this.#noEndpointUntil.set(agentId, Date.now() + NO_ENDPOINT_RECHECK_MS);
    }
    if (!endpoint && !this.#relayFallback) endpoint = await this.#waitForEndpoint(agentId, deadline, options.signal);
    // A new endpoint (the daemon rejoined) is tried at once.
    const down = this.#tailnetDown.get(agentId);
    const cooling = this.#relayFallback && down !== undefined && down.address === endpoint?.address && down.until > Date.now();
    if (endpoint && !cooling) {
      try {
        return await this.#dialTailnet(agentId, this.#relayFallback ? Math.min(remaining(), TAILNET_DIAL_BUDGET_MS) : remaining(), options.signal);
      } catch (error) {
        // Another replica may hold a newer endpoint (the daemon rejoined through it).
        const fresh = await this.#load(agentId);
        if (fresh && (fresh.address !== endpoint.address || fresh.port !== endpoint.port) && deadline > Date.now()) {
          try {
            return await this.#dialTailnet(agentId, remaining(), options.signal);
          } catch {
            // fall through to the fallback decision below
          }
        }
        if (!this.#relayFallback) throw error;
        this.#tailnetDown.set(agentId, { address: endpoint.address, until: Date.now() + TAILNET_RETRY_AFTER_MS });
        this.#log.warn({ agentId, err: error, retryInMs: TAILNET_RETRY_AFTER_MS }, "workspace agent unreachable over the tailnet; using the relay");
      }
    }
    return this.#relay.dial(agentId, { ...options, timeoutMs: remaining() });
  }

  /** Cuts an agent off (its token was revoked): the relay connection, the tailnet endpoint, and its tailnet node. */
  disconnect(agentId: string): void {
    this.#relay.disconnect(agentId);
    this.#tailnetDown.delete(agentId);
    this.#noEndpointUntil.delete(agentId);
    const tailnet = this.#tailnet;
    if (!tailnet) return;
    tailnet.transport.unregister(agentId);
    void this.#db.select({ workspaceName: workspaces.name }).from(workspaceAgents).innerJoin(workspaces, eq(workspaces.id, workspaceAgents.workspaceId))
      .where(eq(workspaceAgents.id, agentId)).limit(1)
      .then(([row]) => (row ? tailnet.removeAgentNodes({ id: agentId, workspaceName: row.workspaceName }) : undefined))
      .catch((error: unknown) => this.#log.warn({ agentId, err: error }, "could not look up the agent's tailnet node"));
  }

  /** Another replica recorded a new endpoint (or none) for the agent: forget a different one held here. */
  endpointChanged(agentId: string, address: string | null): void {
    if (!this.#tailnet) return;
    this.#noEndpointUntil.delete(agentId);
    const held = this.#tailnet.transport.endpoint(agentId);
    if (held && held.address !== address) this.#tailnet.transport.unregister(agentId);
  }

  async #dialTailnet(agentId: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<AgentConnection> {
    const tailnet = this.#tailnet!;
    const started = Date.now();
    const address = tailnet.transport.endpoint(agentId)?.address;
    if (address) await tailnet.peerReady(address, timeoutMs, signal);
    const connection = await tailnet.transport.dial(agentId, { timeoutMs: Math.max(1, timeoutMs - (Date.now() - started)), signal });
    if (!this.#paths.has(connection)) {
      const endpoint = this.#tailnet!.transport.endpoint(agentId);
      if (endpoint) this.#paths.set(connection, { via: "tailnet", address: endpoint.address, port: endpoint.port });
    }
    return connection;
  }

  /** The endpoint stored for the agent; registered with the transport when `register` (and the agent still holds a token). */
  async #load(agentId: string, register = true): Promise<{ address: string; port: number } | undefined> {
    const [row] = await this.#db.select({ address: workspaceAgents.tailnetAddress, port: workspaceAgents.tailnetPort, tokenHash: workspaceAgents.tokenHash })
      .from(workspaceAgents).where(eq(workspaceAgents.id, agentId)).limit(1);
    if (!row?.address || !row.port) return undefined;
    const endpoint = { address: row.address, port: row.port };
    if (register && row.tokenHash !== null) this.#tailnet!.register(agentId, endpoint);
    return endpoint;
  }

  /** Without fallback, a daemon still joining is waited for: it reports its endpoint (maybe to another replica). */
  async #waitForEndpoint(agentId: string, deadline: number, signal: AbortSignal | undefined): Promise<{ address: string; port: number }> {
    while (Date.now() < deadline) {
      signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const endpoint = this.#tailnet!.transport.endpoint(agentId) ?? (await this.#load(agentId));
      if (endpoint) return endpoint;
    }
    throw new TunnelError("agent_unreachable", `workspace agent ${agentId} has not joined the tailnet (and the relay fallback is off)`);
  }
}
