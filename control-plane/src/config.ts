import os from "node:os";
import path from "node:path";
import { z } from "zod";

const flag = z.unknown().transform((value, context) => {
  if (typeof value === "boolean") return value;
  const text = String(value).toLowerCase();
  if (["1", "true", "yes", "on"].includes(text)) return true;
  if (["0", "false", "no", "off"].includes(text)) return false;
  context.addIssue({ code: "custom", message: "must be true or false (1/0, yes/no, on/off)" });
  return z.NEVER;
});
const listen = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/, "must be host:port, e.g. 127.0.0.1:3000");

/** Server configuration, from flags and KILN_* environment variables; parsed once at start. */
export const ServerConfig = z.object({
  /** Where PGlite data, workspaces and generated keys live when nothing else is configured. */
  dataDir: z.string().min(1).default(path.join(os.homedir(), ".local", "share", "kiln")),
  /** Address the HTTP server binds to; loopback by default so a first run is not exposed. */
  listen: listen.default("127.0.0.1:3000"),
  /** URL users and workspace daemons use to reach this server; defaults to http://<listen>. */
  accessUrl: z.url().optional(),
  /** Postgres connection URL; without it an embedded PGlite database in the data dir is used. */
  postgresUrl: z.string().regex(/^postgres(ql)?:\/\//, "must start with postgres:// or postgresql://").optional(),
  /** Log level for the JSON logs on stdout. */
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** How many provisioner jobs this process runs at once. */
  provisionerConcurrency: z.coerce.number().int().min(0).max(64).default(4),
  /** Terraform binary for terraform templates; the pinned build in .tools/ (provisioner/scripts/toolchain.mjs) when unset. */
  terraformPath: z.string().min(1).optional(),
  /** Terraform CLI config (TF_CLI_CONFIG_FILE) saying where providers install from, e.g. your own filesystem mirror. */
  terraformCliConfig: z.string().min(1).optional(),
  /** A terraform build or import running longer than this is interrupted and fails. */
  terraformTimeoutMs: z.coerce.number().int().min(10_000).max(24 * 3_600_000).default(30 * 60_000),
  /** Seals provider keys at rest (64 hex chars or base64 of 32 bytes); generated into the data dir when absent. Replicas must share it. */
  secretKey: z.string().min(32, "must be 32 bytes as 64 hex characters or base64").optional(),
  /** How many chat turns this process runs at once; 0 makes it an API-only replica. */
  chatConcurrency: z.coerce.number().int().min(0).max(100_000).default(500),
  /** How long a chat's lease lasts without a heartbeat before another server resumes the chat. */
  chatLeaseMs: z.coerce.number().int().min(1_000).max(3_600_000).default(120_000),
  /** Reach workspaces over a WireGuard tailnet (tailscaled + headscale) instead of only the WebSocket relay. */
  tailnet: flag.default(false),
  /**
   * With an API key: the URL of an external headscale (or compatible) server. Without: the URL nodes reach the
   * embedded headscale and its DERP at (defaults to http://<tailnet listen address>).
   */
  tailnetUrl: z.url().optional(),
  /** API key of an external headscale (`headscale apikeys create`); without one Kiln runs its own headscale. */
  tailnetApiKey: z.string().min(1).optional(),
  /** Where the embedded headscale and its DERP server listen (port 0: a free one). */
  tailnetListen: listen.default("127.0.0.1:0"),
  /** Where the embedded DERP's STUN server listens (UDP; port 0: a free one). */
  tailnetStunListen: listen.default("127.0.0.1:0"),
  /** The IPv4 address the embedded DERP region advertises to nodes; the listen host (127.0.0.1 for a wildcard) by default. */
  tailnetDerpIpv4: z.ipv4().optional(),
  /** When a workspace cannot join the tailnet (or is unreachable over it), use the relay instead of failing. */
  tailnetRelayFallback: flag.default(true),
  /**
   * Let users' own devices SSH into their workspaces over the tailnet (embedded headscale only). The SSH server there
   * trusts the ACL policy, so only turn it on when each workspace has its own network namespace (containers, VMs).
   */
  tailnetDeviceSsh: flag.default(false),
});
export type ServerConfig = z.infer<typeof ServerConfig>;

const environmentNames: Record<keyof ServerConfig, string> = {
  dataDir: "KILN_DATA_DIR",
  listen: "KILN_LISTEN",
  accessUrl: "KILN_ACCESS_URL",
  postgresUrl: "KILN_POSTGRES_URL",
  logLevel: "KILN_LOG_LEVEL",
  provisionerConcurrency: "KILN_PROVISIONER_CONCURRENCY",
  terraformPath: "KILN_TERRAFORM_PATH",
  terraformCliConfig: "KILN_TERRAFORM_CLI_CONFIG",
  terraformTimeoutMs: "KILN_TERRAFORM_TIMEOUT_MS",
  secretKey: "KILN_SECRET_KEY",
  chatConcurrency: "KILN_CHAT_CONCURRENCY",
  chatLeaseMs: "KILN_CHAT_LEASE_MS",
  tailnet: "KILN_TAILNET",
  tailnetUrl: "KILN_TAILNET_URL",
  tailnetApiKey: "KILN_TAILNET_API_KEY",
  tailnetListen: "KILN_TAILNET_LISTEN",
  tailnetStunListen: "KILN_TAILNET_STUN_LISTEN",
  tailnetDerpIpv4: "KILN_TAILNET_DERP_IPV4",
  tailnetRelayFallback: "KILN_TAILNET_RELAY_FALLBACK",
  tailnetDeviceSsh: "KILN_TAILNET_DEVICE_SSH",
};

/** Flags win over environment variables, which win over defaults. Throws one readable message listing every bad setting. */
export function parseServerConfig(flags: Partial<Record<keyof ServerConfig, unknown>>, environment: NodeJS.ProcessEnv = process.env): ServerConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, variable] of Object.entries(environmentNames)) {
    const value = flags[key as keyof ServerConfig] ?? (environment[variable] || undefined);
    if (value !== undefined) raw[key] = value;
  }
  const result = ServerConfig.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = String(issue.path[0]) as keyof ServerConfig;
      return `  --${kebab(key)} / ${environmentNames[key] ?? key}: ${issue.message}`;
    });
    throw new Error(`invalid server configuration:\n${lines.join("\n")}`);
  }
  return result.data;
}

export function accessUrlOf(config: ServerConfig, boundPort?: number): string {
  if (config.accessUrl) return config.accessUrl.replace(/\/$/, "");
  const [host, port] = splitListen(config.listen);
  const shownHost = host === "" || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return `http://${shownHost}:${boundPort ?? port}`;
}

export function splitListen(value: string): [string, number] {
  const index = value.lastIndexOf(":");
  return [value.slice(0, index).replace(/^\[|\]$/g, ""), Number(value.slice(index + 1))];
}

function kebab(value: string): string {
  return value.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}
