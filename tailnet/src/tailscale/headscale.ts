import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { HeadscaleApi, type Coordinator, type HeadscaleNode, type PreauthKey } from "./headscale-api.ts";
import { ManagedProcess, freePort, run, waitFor } from "./process.ts";

/** The ACL policy headscale enforces, in Tailscale's policy format (JSON is valid HuJSON). */
export interface TailnetPolicy {
  tagOwners: Record<string, string[]>;
  acls: { action: "accept"; src: string[]; dst: string[] }[];
}

export const CONTROL_PLANE_TAG = "tag:kiln-control-plane";
export const WORKSPACE_TAG = "tag:kiln-workspace";
/** The headscale user that owns Kiln's tags and keys. */
export const KILN_USER = "kiln";

/**
 * Kiln's policy. The control plane reaches every workspace daemon's API port. Each owner's devices (nodes of the
 * headscale user `deviceUser(owner)`) reach that owner's workspaces (tagged `ownerTag(owner)`) on the SSH ports.
 * Nothing else is allowed: Tailscale ACLs deny by default, so workspaces cannot reach each other.
 */
export function defaultPolicy(daemonPorts: number[] | { first: number; last: number } = DAEMON_TAILNET_PORTS, options: { owners?: string[]; sshPorts?: { first: number; last: number } } = {}): TailnetPolicy {
  const ports = Array.isArray(daemonPorts) ? daemonPorts.join(",") : `${daemonPorts.first}-${daemonPorts.last}`;
  const ssh = options.sshPorts ?? DAEMON_SSH_PORTS;
  const owners = [...new Set(options.owners ?? [])].sort();
  return {
    tagOwners: {
      [CONTROL_PLANE_TAG]: [`${KILN_USER}@`],
      [WORKSPACE_TAG]: [`${KILN_USER}@`],
      ...Object.fromEntries(owners.map((owner) => [ownerTag(owner), [`${KILN_USER}@`]])),
    },
    acls: [
      { action: "accept", src: [CONTROL_PLANE_TAG], dst: [`${WORKSPACE_TAG}:${ports}`] },
      ...owners.map((owner) => ({ action: "accept" as const, src: [`${deviceUser(owner)}@`], dst: [`${ownerTag(owner)}:${ssh.first}-${ssh.last}`] })),
    ],
  };
}

/** The tag of an owner's workspaces; `owner` is a key of letters and digits (Kiln uses the user id without dashes). */
export function ownerTag(owner: string): string {
  return `tag:kiln-owner-${owner}`;
}

/** The headscale user an owner's own devices join as. */
export function deviceUser(owner: string): string {
  return `kiln-user-${owner}`;
}

/** The TCP ports a daemon may serve SSH on for its owner's devices (same forwarding as the API ports). */
export const DAEMON_SSH_PORTS = { first: 46200, last: 46299 } as const;

/**
 * The TCP ports a daemon may serve its API on over the tailnet. Userspace tailscaled forwards inbound tailnet
 * TCP to 127.0.0.1 on the same port, so daemons sharing a host (the local provisioner) each take the first free
 * one; the policy lets the control plane reach exactly this range.
 */
export const DAEMON_TAILNET_PORTS = { first: 46100, last: 46199 } as const;

export interface HeadscaleOptions {
  /** Path of the headscale binary. */
  binary: string;
  /** Holds the generated config, keys, SQLite database and socket. */
  dataDir: string;
  policy: TailnetPolicy;
  /** Address headscale (and its embedded DERP) and STUN bind to; loopback by default. */
  listenHost?: string;
  /** Ports; free ones are picked when left out. */
  listenPort?: number;
  stunPort?: number;
  /** Address the STUN server binds to (UDP); the listen host by default. */
  stunHost?: string;
  /** The URL nodes reach headscale and its DERP at (server_url); http://<listenHost>:<listenPort> by default. */
  serverUrl?: string;
  /** The IPv4 address the embedded DERP region advertises; 127.0.0.1 by default. */
  derpIpv4?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * An embedded headscale: a managed child process with a generated config. Kiln drives it through its REST API
 * (an API key made with its CLI at start), the same client an external headscale is driven with.
 */
export class Headscale implements Coordinator {
  /** The URL nodes use (server_url). */
  readonly url: string;
  /** Where it listens (may differ from `url` behind a proxy). */
  readonly listenUrl: string;
  readonly stunAddress: string;
  readonly #process: ManagedProcess;
  readonly #api: HeadscaleApi;

  private constructor(url: string, listenUrl: string, stunAddress: string, managed: ManagedProcess, api: HeadscaleApi) {
    this.url = url;
    this.listenUrl = listenUrl;
    this.stunAddress = stunAddress;
    this.#process = managed;
    this.#api = api;
  }

  static async start(options: HeadscaleOptions): Promise<Headscale> {
    mkdirSync(options.dataDir, { recursive: true });
    const listenPort = options.listenPort ?? (await freePort());
    const stunPort = options.stunPort ?? (await freePort());
    const metricsPort = await freePort();
    const grpcPort = await freePort();
    const listenHost = options.listenHost ?? "127.0.0.1";
    // A wildcard listen address is reached on loopback from here.
    const url = `http://${listenHost === "0.0.0.0" || listenHost === "::" ? "127.0.0.1" : listenHost}:${listenPort}`;
    const serverUrl = options.serverUrl ?? url;
    const configPath = path.join(options.dataDir, "config.yaml");
    writeFileSync(configPath, headscaleConfig({ dataDir: options.dataDir, url: serverUrl, listenAddress: `${options.listenHost ?? "127.0.0.1"}:${listenPort}`, stunAddress: `${options.stunHost ?? options.listenHost ?? "127.0.0.1"}:${stunPort}`, derpIpv4: options.derpIpv4 ?? "127.0.0.1", metricsPort, grpcPort }));
    const managed = new ManagedProcess(options.binary, ["-c", configPath, "serve"], { ...process.env, ...options.env });
    try {
      await waitFor(
        "headscale to answer /health",
        async () => ((await fetch(`${url}/health`)).ok ? true : undefined),
        15_000,
        () => (managed.running ? undefined : `headscale exited: ${managed.output.trim().slice(-2000)}`),
      );
      // One key, kept (0600) next to the database and reused while it works; a new one only when it does not.
      const keyFile = path.join(options.dataDir, "api.key");
      let api: HeadscaleApi | undefined;
      if (existsSync(keyFile)) {
        const stored = new HeadscaleApi({ url, apiKey: readFileSync(keyFile, "utf8").trim(), user: KILN_USER });
        api = await stored.listNodes().then(() => stored, () => undefined);
      }
      if (!api) {
        const created = (await run(options.binary, ["-c", configPath, "apikeys", "create", "--expiration", "8760h", "-o", "json", "--force"])).trim();
        const apiKey = created.startsWith("\"") ? (JSON.parse(created) as string) : created;
        writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
        api = new HeadscaleApi({ url, apiKey, user: KILN_USER });
      }
      await api.setPolicy(options.policy);
      return new Headscale(serverUrl, url, `${options.stunHost ?? options.listenHost ?? "127.0.0.1"}:${stunPort}`, managed, api);
    } catch (error) {
      await managed.stop();
      throw error;
    }
  }

  get running(): boolean {
    return this.#process.running;
  }

  /** The tail of headscale's log, for diagnostics. */
  get log(): string {
    return this.#process.output;
  }

  createPreauthKey(options: { tags: string[]; user?: string; ephemeral?: boolean; reusable?: boolean; expiresInMs?: number }): Promise<PreauthKey> {
    return this.#api.createPreauthKey(options);
  }

  listNodes(): Promise<HeadscaleNode[]> {
    return this.#api.listNodes();
  }

  setPolicy(policy: TailnetPolicy): Promise<void> {
    return this.#api.setPolicy(policy);
  }

  deleteNode(id: string): Promise<void> {
    return this.#api.deleteNode(id);
  }

  deleteNodesByAddress(address: string): Promise<number> {
    return this.#api.deleteNodesByAddress(address);
  }

  async healthy(): Promise<boolean> {
    return this.running && (await this.#api.healthy());
  }

  async stop(): Promise<void> {
    await this.#process.stop();
  }
}

function headscaleConfig(options: { dataDir: string; url: string; listenAddress: string; stunAddress: string; derpIpv4: string; metricsPort: number; grpcPort: number }): string {
  const file = (name: string) => JSON.stringify(path.join(options.dataDir, name));
  // JSON is valid YAML; quoting every path keeps odd characters harmless.
  return `# Written by Kiln for its embedded headscale.
server_url: ${JSON.stringify(options.url)}
listen_addr: "${options.listenAddress}"
metrics_listen_addr: "127.0.0.1:${options.metricsPort}"
grpc_listen_addr: "127.0.0.1:${options.grpcPort}"
grpc_allow_insecure: false
noise:
  private_key_path: ${file("noise_private.key")}
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: kiln
    region_name: Kiln embedded DERP
    stun_listen_addr: "${options.stunAddress}"
    private_key_path: ${file("derp_server_private.key")}
    automatically_add_embedded_derp_region: true
    ipv4: ${JSON.stringify(options.derpIpv4)}
    # Without an IPv6 address nodes on a host with IPv6 wait out a 3 s netcheck probe before they pick a DERP
    # region; "none" tells them the region has no IPv6 at all.
    ipv6: "none"
  urls: []
  paths: []
  auto_update_enabled: false
  update_frequency: 24h
disable_check_updates: true
# Send node changes (a workspace joined, left, or a policy changed) to the other nodes after 50 ms instead of
# 800/500 ms: a joining workspace is reachable ~1.5 s sooner. More, smaller map updates at high churn.
tuning:
  batch_change_delay: 50ms
  node_store_batch_timeout: 50ms
node:
  ephemeral:
    inactivity_timeout: 30m
database:
  type: sqlite
  sqlite:
    path: ${file("db.sqlite")}
    write_ahead_log: true
log:
  level: warn
  format: text
# In the database, set through the API: Kiln changes it (new owners) and it applies at once.
policy:
  mode: database
dns:
  magic_dns: false
  base_domain: kiln.internal
  override_local_dns: false
unix_socket: ${file("headscale.sock")}
unix_socket_permission: "0770"
logtail:
  enabled: false
`;
}
