import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
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
 * Kiln's policy: the control plane reaches every workspace daemon's API port; nothing else is allowed,
 * so workspaces cannot reach each other (Tailscale ACLs deny by default).
 */
export function defaultPolicy(daemonPorts: number[]): TailnetPolicy {
  return {
    tagOwners: { [CONTROL_PLANE_TAG]: [`${KILN_USER}@`], [WORKSPACE_TAG]: [`${KILN_USER}@`] },
    acls: [{ action: "accept", src: [CONTROL_PLANE_TAG], dst: [`${WORKSPACE_TAG}:${daemonPorts.join(",")}`] }],
  };
}

export interface HeadscaleOptions {
  /** Path of the headscale binary. */
  binary: string;
  /** Holds the generated config, keys, SQLite database and socket. */
  dataDir: string;
  policy: TailnetPolicy;
  /** Loopback ports; free ones are picked when left out. */
  listenPort?: number;
  stunPort?: number;
  env?: NodeJS.ProcessEnv;
}

export interface PreauthKey {
  key: string;
  ephemeral: boolean;
  reusable: boolean;
  tags: string[];
}

export interface HeadscaleNode {
  id: string;
  name: string;
  ipAddresses: string[];
  tags: string[];
  online: boolean;
}

/** An embedded headscale: a managed child process with a generated config, driven through its CLI. */
export class Headscale {
  readonly url: string;
  readonly stunAddress: string;
  readonly #configPath: string;
  readonly #binary: string;
  readonly #process: ManagedProcess;
  #userId: string | undefined;

  private constructor(binary: string, url: string, stunAddress: string, configPath: string, managed: ManagedProcess) {
    this.#binary = binary;
    this.url = url;
    this.stunAddress = stunAddress;
    this.#configPath = configPath;
    this.#process = managed;
  }

  static async start(options: HeadscaleOptions): Promise<Headscale> {
    mkdirSync(options.dataDir, { recursive: true });
    const listenPort = options.listenPort ?? (await freePort());
    const stunPort = options.stunPort ?? (await freePort());
    const metricsPort = await freePort();
    const grpcPort = await freePort();
    const url = `http://127.0.0.1:${listenPort}`;
    const policyPath = path.join(options.dataDir, "policy.json");
    writeFileSync(policyPath, `${JSON.stringify(options.policy, null, 2)}\n`);
    const configPath = path.join(options.dataDir, "config.yaml");
    writeFileSync(configPath, headscaleConfig({ dataDir: options.dataDir, url, listenPort, stunPort, metricsPort, grpcPort, policyPath }));
    const managed = new ManagedProcess(options.binary, ["-c", configPath, "serve"], { ...process.env, ...options.env });
    const headscale = new Headscale(options.binary, url, `127.0.0.1:${stunPort}`, configPath, managed);
    try {
      await waitFor(
        "headscale to answer /health",
        async () => ((await fetch(`${url}/health`)).ok ? true : undefined),
        15_000,
        () => (managed.running ? undefined : `headscale exited: ${managed.output.trim().slice(-2000)}`),
      );
      await headscale.#cli(["users", "create", KILN_USER]);
      const users = JSON.parse(await headscale.#cli(["users", "list", "-o", "json"])) as { id: number | string; name: string }[];
      headscale.#userId = String(users.find((user) => user.name === KILN_USER)?.id ?? "");
    } catch (error) {
      await managed.stop();
      throw error;
    }
    return headscale;
  }

  get running(): boolean {
    return this.#process.running;
  }

  /** A single-use (unless reusable) key that joins a node with `tags`; ephemeral nodes vanish when they go away. */
  async createPreauthKey(options: { tags: string[]; ephemeral?: boolean; reusable?: boolean; expiration?: string }): Promise<PreauthKey> {
    const args = ["preauthkeys", "create", "-u", this.#userId ?? "", "--tags", options.tags.join(","), "-e", options.expiration ?? "10m", "-o", "json"];
    if (options.ephemeral ?? true) args.push("--ephemeral");
    if (options.reusable) args.push("--reusable");
    const created = JSON.parse(await this.#cli(args)) as { key: string; ephemeral?: boolean; reusable?: boolean; acl_tags?: string[] };
    return { key: created.key, ephemeral: created.ephemeral ?? false, reusable: created.reusable ?? false, tags: created.acl_tags ?? [] };
  }

  async listNodes(): Promise<HeadscaleNode[]> {
    const nodes = JSON.parse(await this.#cli(["nodes", "list", "-o", "json"])) as
      | { id: number | string; name?: string; given_name?: string; ip_addresses?: string[]; tags?: string[]; online?: boolean }[]
      | null;
    return (nodes ?? []).map((node) => ({
      id: String(node.id),
      name: node.given_name ?? node.name ?? "",
      ipAddresses: node.ip_addresses ?? [],
      tags: node.tags ?? [],
      online: node.online ?? false,
    }));
  }

  async deleteNode(id: string): Promise<void> {
    await this.#cli(["nodes", "delete", "-i", id, "--force"]);
  }

  /** Deletes every node holding `address`; returns how many were deleted. */
  async deleteNodeByAddress(address: string): Promise<number> {
    const nodes = (await this.listNodes()).filter((node) => node.ipAddresses.includes(address));
    for (const node of nodes) await this.deleteNode(node.id);
    return nodes.length;
  }

  async stop(): Promise<void> {
    await this.#process.stop();
  }

  #cli(args: string[]): Promise<string> {
    return run(this.#binary, ["-c", this.#configPath, ...args, "--force"]);
  }
}

function headscaleConfig(options: { dataDir: string; url: string; listenPort: number; stunPort: number; metricsPort: number; grpcPort: number; policyPath: string }): string {
  const file = (name: string) => JSON.stringify(path.join(options.dataDir, name));
  // JSON is valid YAML; quoting every path keeps odd characters harmless.
  return `# Written by Kiln for its embedded headscale.
server_url: ${JSON.stringify(options.url)}
listen_addr: "127.0.0.1:${options.listenPort}"
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
    stun_listen_addr: "127.0.0.1:${options.stunPort}"
    private_key_path: ${file("derp_server_private.key")}
    automatically_add_embedded_derp_region: true
    ipv4: 127.0.0.1
  urls: []
  paths: []
  auto_update_enabled: false
  update_frequency: 24h
disable_check_updates: true
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
policy:
  mode: file
  path: ${JSON.stringify(options.policyPath)}
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
