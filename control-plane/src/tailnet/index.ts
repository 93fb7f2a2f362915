import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  CONTROL_PLANE_TAG,
  DAEMON_SSH_PORTS,
  DAEMON_TAILNET_PORTS,
  Headscale,
  HeadscaleApi,
  HeadscaleApiError,
  KILN_USER,
  TailnetTransport,
  TailscaleNode,
  WORKSPACE_TAG,
  defaultPolicy,
  deviceUser,
  findBinaries,
  ownerTag,
  type Coordinator,
  type PeerPath,
  type TailscaleBinaries,
} from "@kiln/tailnet";
import { splitListen, type ServerConfig } from "../config.ts";
import type { TailnetJoin } from "@kiln/workspace-daemon/agent-protocol";
import type { Logger } from "../logger.ts";

export type { TailnetJoin };

export interface TailnetHealth {
  mode: "embedded" | "external";
  coordinator: { url: string; healthy: boolean };
  node: { running: boolean; address: string | null; restarts: number };
}

/**
 * The control plane's part of the tailnet: the coordination server (an embedded headscale, or an external one
 * driven by API key), its own userspace tailscaled node with SOCKS5 on loopback, and the transport that dials
 * daemons through it. The node is supervised: when tailscaled dies it rejoins with a fresh key.
 */
export class ControlPlaneTailnet {
  readonly mode: "embedded" | "external";
  /** Whether owners' devices may SSH into their workspaces over the tailnet (embedded headscale, KILN_TAILNET_DEVICE_SSH). */
  readonly deviceSsh: boolean;
  readonly coordinator: Coordinator;
  readonly transport: TailnetTransport;
  readonly #embedded: Headscale | undefined;
  readonly #binaries: TailscaleBinaries;
  readonly #serverKey: Buffer;
  readonly #stateDir: string;
  readonly #log: Logger;
  readonly #socks5Port: number;
  #node: TailscaleNode;
  #restarts = 0;
  #closed = false;
  /** Owners (user keys) the embedded policy has a tag and a device rule for; changes are applied one at a time. */
  readonly #owners: Set<string>;
  #policyUpdate: Promise<void> = Promise.resolve();
  /** Per peer address: settles once the control plane's node has the peer in its netmap with a way to reach it. */
  readonly #peers = new Map<string, Promise<void>>();

  private constructor(init: { coordinator: Coordinator; embedded?: Headscale; binaries: TailscaleBinaries; serverKey: Buffer; stateDir: string; log: Logger; node: TailscaleNode; owners: string[]; deviceSsh: boolean }) {
    this.#owners = new Set(init.owners);
    this.deviceSsh = init.deviceSsh && init.embedded !== undefined;
    this.coordinator = init.coordinator;
    this.#embedded = init.embedded;
    this.mode = init.embedded ? "embedded" : "external";
    this.#binaries = init.binaries;
    this.#serverKey = init.serverKey;
    this.#stateDir = init.stateDir;
    this.#log = init.log;
    this.#node = init.node;
    this.#socks5Port = init.node.socks5!.port;
    this.transport = new TailnetTransport({ socks5: init.node.socks5!, log: init.log });
    this.#supervise();
  }

  /** `ownerIds`: the deployment's users, whose devices the embedded policy lets reach their own workspaces. */
  static async start(config: ServerConfig, deps: { serverKey: Buffer; log: Logger; ownerIds: string[] }): Promise<ControlPlaneTailnet> {
    const owners = deps.ownerIds.map(ownerKey);
    const log = deps.log;
    const external = config.tailnetApiKey !== undefined;
    if (external && !config.tailnetUrl) throw new Error("KILN_TAILNET_API_KEY is set but KILN_TAILNET_URL is not: an external headscale needs both");
    const { found, missing } = findBinaries(external ? ["tailscaled", "tailscale"] : ["tailscaled", "tailscale", "headscale"]);
    if (missing.length > 0) {
      throw new Error(`--tailnet needs ${missing.join(", ")} on PATH or in .tools/bin; build the pinned versions with 'node tailnet/scripts/toolchain.mjs' (needs Go)`);
    }
    const binaries = { tailscaled: found.tailscaled!, tailscale: found.tailscale! };
    const stateDir = path.join(config.dataDir, "tailnet");
    let embedded: Headscale | undefined;
    let coordinator: Coordinator;
    if (external) {
      coordinator = new HeadscaleApi({ url: config.tailnetUrl!, apiKey: config.tailnetApiKey!, user: KILN_USER });
      if (!(await coordinator.healthy())) throw new Error(`the headscale at ${config.tailnetUrl} does not answer /health`);
      try {
        await coordinator.listNodes();
      } catch (error) {
        if (error instanceof HeadscaleApiError && (error.status === 401 || error.status === 403)) {
          throw new Error(`the headscale at ${config.tailnetUrl} refused KILN_TAILNET_API_KEY (HTTP ${error.status}); create a key with 'headscale apikeys create'`);
        }
        throw error;
      }
    } else {
      const [host, port] = splitListen(config.tailnetListen);
      const [stunHost, stunPort] = splitListen(config.tailnetStunListen);
      const wildcard = host === "" || host === "0.0.0.0" || host === "::";
      const advertised = wildcard ? "127.0.0.1" : host;
      if (wildcard && !config.tailnetUrl) log.warn({ listen: config.tailnetListen }, "the embedded headscale listens on all interfaces but KILN_TAILNET_URL is not set: nodes will be told to reach it at 127.0.0.1");
      // Nodes remember the login server's URL: ports picked on a first start are reused on the next.
      const portsFile = path.join(stateDir, "headscale", "ports.json");
      const picked = readPorts(portsFile);
      embedded = await Headscale.start({
        binary: found.headscale!,
        dataDir: path.join(stateDir, "headscale"),
        policy: defaultPolicy(DAEMON_TAILNET_PORTS, { owners }),
        listenHost: host || "0.0.0.0",
        listenPort: port || picked?.listen,
        stunPort: stunPort || picked?.stun,
        stunHost: stunHost || "0.0.0.0",
        serverUrl: config.tailnetUrl?.replace(/\/$/, ""),
        derpIpv4: config.tailnetDerpIpv4 ?? advertised,
      });
      writeFileSync(portsFile, `${JSON.stringify({ listen: Number(new URL(embedded.listenUrl).port), stun: Number(embedded.stunAddress.split(":").at(-1)) })}\n`);
      coordinator = embedded;
    }
    try {
      const node = await startNode({ coordinator, binaries, stateDir, socks5: true });
      log.info({ mode: embedded ? "embedded" : "external", coordinator: coordinator.url, address: node.ipv4 }, "tailnet ready");
      return new ControlPlaneTailnet({ coordinator, embedded, binaries, serverKey: deps.serverKey, stateDir, log, node, owners, deviceSsh: config.tailnetDeviceSsh });
    } catch (error) {
      await embedded?.stop();
      throw error;
    }
  }

  /** The credential a daemon expects from the control plane; derived from the server key, so every replica knows it. */
  credentialFor(agentId: string): string {
    return createHmac("sha256", this.#serverKey).update(`kiln-tailnet-credential:${agentId}`).digest("base64url");
  }

  async joinFor(agent: { id: string; workspaceName: string; ownerId: string }): Promise<TailnetJoin> {
    const owner = ownerKey(agent.ownerId);
    // An external headscale's policy is its operator's: only the tags Kiln needs there are used.
    const tags = this.mode === "embedded" ? [WORKSPACE_TAG, ownerTag(owner)] : [WORKSPACE_TAG];
    if (this.mode === "embedded") await this.#ensureOwner(owner);
    const key = await this.coordinator.createPreauthKey({ tags, ephemeral: true, reusable: false, expiresInMs: 10 * 60_000 });
    return {
      login_server: this.coordinator.url,
      auth_key: key.key,
      credential: this.credentialFor(agent.id),
      hostname: agentHostname(agent),
      ports: { ...DAEMON_TAILNET_PORTS },
      ssh_ports: this.deviceSsh ? { ...DAEMON_SSH_PORTS } : null,
      derp_over_http: this.coordinator.url.startsWith("http://"),
    };
  }

  /**
   * A key for one of a user's own devices (laptop, IDE host): it joins as the user's device user, which the
   * policy lets reach only that user's workspaces, on their SSH ports. Embedded coordination only.
   */
  async deviceKey(user: { id: string }): Promise<{ login_server: string; auth_key: string; expires_at: string; derp_over_http: boolean }> {
    if (!this.deviceSsh) throw new Error("device SSH is off (KILN_TAILNET_DEVICE_SSH) or the headscale is external");
    const owner = ownerKey(user.id);
    await this.#ensureOwner(owner);
    const expiresInMs = 60 * 60_000;
    const key = await this.coordinator.createPreauthKey({ tags: [], user: deviceUser(owner), ephemeral: false, reusable: false, expiresInMs });
    return { login_server: this.coordinator.url, auth_key: key.key, expires_at: new Date(Date.now() + expiresInMs).toISOString(), derp_over_http: this.coordinator.url.startsWith("http://") };
  }

  /** A suspended user: their device rule leaves the policy and their devices leave the tailnet. */
  async revokeOwner(userId: string): Promise<void> {
    if (this.mode !== "embedded") return;
    const owner = ownerKey(userId);
    const update = this.#policyUpdate.catch(() => undefined).then(async () => {
      if (!this.#owners.delete(owner)) return;
      await this.coordinator.setPolicy(defaultPolicy(DAEMON_TAILNET_PORTS, { owners: [...this.#owners] }));
    });
    this.#policyUpdate = update;
    await update;
    const devices = (await this.coordinator.listNodes()).filter((node) => node.user === deviceUser(owner) && node.tags.length === 0);
    for (const device of devices) await this.coordinator.deleteNode(device.id);
    if (devices.length > 0) this.#log.info({ userId, devices: devices.length }, "tailnet devices of a suspended user removed");
  }

  /** Adds an owner's tag and device rule to the embedded policy (before a key carrying the tag is made). */
  #ensureOwner(owner: string): Promise<void> {
    if (this.#owners.has(owner)) return Promise.resolve();
    const update = this.#policyUpdate.catch(() => undefined).then(async () => {
      if (this.#owners.has(owner)) return;
      const owners = [...this.#owners, owner];
      await this.coordinator.setPolicy(defaultPolicy(DAEMON_TAILNET_PORTS, { owners }));
      this.#owners.add(owner);
      this.#log.info({ owners: owners.length }, "tailnet policy updated for a new owner");
    });
    this.#policyUpdate = update;
    return update;
  }

  /** Makes a daemon's reported endpoint the one this replica dials. */
  register(agentId: string, endpoint: { address: string; port: number }): void {
    this.transport.register(agentId, { ...endpoint, credential: this.credentialFor(agentId) });
    void this.peerReady(endpoint.address).catch(() => undefined);
  }

  /**
   * Waits until this node's netmap holds the peer and its home DERP region. A TCP SYN sent before that is
   * dropped and retried with backoff, so a dial right after a daemon joins would take seconds.
   */
  peerReady(address: string, timeoutMs = 15_000, signal?: AbortSignal): Promise<void> {
    let ready = this.#peers.get(address);
    if (!ready) {
      const node = this.#node;
      ready = node.waitForPeer(address, 15_000);
      this.#peers.set(address, ready);
      // Forget failures, and successes once the node changes (a restarted node has a new netmap).
      ready.then(
        () => void node.exited.then(() => this.#peers.get(address) === ready && this.#peers.delete(address)),
        () => this.#peers.get(address) === ready && this.#peers.delete(address),
      );
    }
    // The shared wait runs on; this caller waits only its own budget.
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`peer ${address} not in the control plane's netmap after ${timeoutMs} ms`)), timeoutMs);
      const onAbort = () => done(signal!.reason instanceof Error ? signal!.reason : new Error("aborted"));
      const done = (error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      ready.then(() => done(), (error: unknown) => done(error instanceof Error ? error : new Error(String(error))));
    });
  }

  /**
   * Whether `address` belongs to the node this agent joined as: a workspace-tagged node with the hostname its key
   * was issued for. An agent token must not be able to point the control plane (or node removal) elsewhere.
   */
  async isAgentNode(agent: { id: string; workspaceName: string }, address: string): Promise<boolean> {
    const hostname = agentHostname(agent);
    return (await this.coordinator.listNodes()).some((node) => node.ipAddresses.includes(address) && node.hostname === hostname && node.tags.includes(WORKSPACE_TAG));
  }

  /** Deletes the nodes this agent joined as (all, or all but the one holding `keep`); ephemeral ones also expire on their own. */
  async removeAgentNodes(agent: { id: string; workspaceName: string }, keep?: string): Promise<void> {
    try {
      const hostname = agentHostname(agent);
      const nodes = (await this.coordinator.listNodes()).filter((node) => node.hostname === hostname && node.tags.includes(WORKSPACE_TAG) && !(keep && node.ipAddresses.includes(keep)));
      for (const node of nodes) await this.coordinator.deleteNode(node.id);
      if (nodes.length > 0) this.#log.info({ agentId: agent.id, removed: nodes.length }, "tailnet node removed");
    } catch (error) {
      this.#log.warn({ agentId: agent.id, err: error }, "could not remove the agent's tailnet nodes; ephemeral nodes expire on their own");
    }
  }

  /** A disco ping from the control plane's node: whether the path is direct or through DERP, and its round trip. */
  ping(address: string): Promise<PeerPath> {
    return this.#node.ping(address, 3);
  }

  async health(): Promise<TailnetHealth> {
    let address: string | null = null;
    try {
      address = this.#node.ipv4;
    } catch {
      address = null;
    }
    return {
      mode: this.mode,
      coordinator: { url: this.coordinator.url, healthy: await this.coordinator.healthy() },
      node: { running: this.#node.running && (await this.#node.status().then((status) => status.BackendState === "Running", () => false)), address, restarts: this.#restarts },
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.transport.close();
    await this.#node.stop();
    await this.#embedded?.stop();
  }

  /** Rejoins with a fresh key (the node's state is in memory only) whenever tailscaled exits, with backoff. */
  #supervise(): void {
    const node = this.#node;
    void node.lost().then(async () => {
      if (this.#closed || node !== this.#node) return;
      this.#log.warn({ running: node.running, log: node.log.slice(-1000) }, "the control plane's tailscaled exited or was logged out; rejoining");
      await node.stop();
      for (let delay = 500; !this.#closed; delay = Math.min(delay * 2, 30_000)) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (this.#closed) return;
        try {
          const restarted = await startNode({ coordinator: this.coordinator, binaries: this.#binaries, stateDir: this.#stateDir, socks5: this.#socks5Port });
          if (this.#closed) {
            await restarted.stop();
            return;
          }
          this.#node = restarted;
          this.#restarts += 1;
          this.#log.info({ address: this.#node.ipv4 }, "the control plane's tailnet node rejoined");
          this.#supervise();
          return;
        } catch (error) {
          this.#log.error({ err: error }, "the control plane's tailnet node could not rejoin; retrying");
        }
      }
    });
  }
}

async function startNode(options: { coordinator: Coordinator; binaries: TailscaleBinaries; stateDir: string; socks5: true | number }): Promise<TailscaleNode> {
  const key = await options.coordinator.createPreauthKey({ tags: [CONTROL_PLANE_TAG], ephemeral: true, reusable: false });
  return TailscaleNode.start({
    binaries: options.binaries,
    stateDir: path.join(options.stateDir, `node-${process.pid}`),
    loginServer: options.coordinator.url,
    authKey: key.key,
    hostname: hostnameOf(`kiln-control-plane-${os.hostname()}`),
    socks5: options.socks5,
    env: options.coordinator.url.startsWith("http://") ? { TS_DEBUG_USE_DERP_HTTP: "1" } : {},
  });
}

function readPorts(file: string): { listen: number; stun: number } | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as { listen: number; stun: number };
  } catch {
    return undefined;
  }
}

/** The hostname an agent's node joins with; the agent id's prefix comes last and survives truncation. */
function agentHostname(agent: { id: string; workspaceName: string }): string {
  return hostnameOf(`${hostnameOf(agent.workspaceName).slice(0, 50)}-${agent.id.slice(0, 8)}`);
}

/** An owner's key in tags and headscale user names: the user id's hex digits. */
function ownerKey(userId: string): string {
  return userId.replace(/-/g, "").toLowerCase();
}

/** A DNS label: lower-case letters, digits and dashes, at most 63 characters. */
function hostnameOf(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63) || "kiln";
}
