import { statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";

/** Unset and empty mean the same thing, so `KILN_LOG_LEVEL=` takes the default. */
const optional = <Schema extends z.ZodType>(schema: Schema) =>
  z.preprocess((value) => (value === "" ? undefined : value), schema);

const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

export const DaemonEnvironment = z.object({
  // Authenticates the daemon to the control plane; issued when the workspace is built.
  KILN_AGENT_TOKEN: optional(z.string({ error: "required" }).min(1, "required")),
  // Control plane access URL the daemon dials out to.
  KILN_URL: optional(
    z.url({ protocol: /^https?$/, error: (issue) => (issue.input === undefined ? "required" : "must be an http(s) URL") }),
  ),
  // Directory relative paths and commands resolve against.
  KILN_WORKDIR: optional(
    z
      .string()
      .default(() => process.cwd())
      .transform((path) => resolve(path))
      .refine(isDirectory, "must be an existing directory"),
  ),
  // Where the daemon keeps state that must outlive it, such as the workspace's SSH host key.
  KILN_STATE_DIR: optional(
    z
      .string()
      .default(() => join(homedir(), ".kiln"))
      .transform((path) => resolve(path)),
  ),
  // Where tailscaled and tailscale are, when not on PATH (used only when the control plane runs a tailnet).
  KILN_TAILSCALE_BIN_DIR: optional(z.string().min(1).optional()),
  // How the relay carries HTTP/2: "direct" on the upgraded socket (falling back to WebSocket messages when
  // the control plane or a proxy refuses that upgrade), or "websocket" from the start.
  KILN_RELAY_FRAMING: optional(z.enum(["direct", "websocket"]).default("direct")),
  // pino level for the daemon's logs.
  KILN_LOG_LEVEL: optional(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info")),
});
export type DaemonEnvironment = z.infer<typeof DaemonEnvironment>;

export interface DaemonConfig {
  agentToken: string;
  controlPlaneUrl: string;
  workdir: string;
  stateDir: string;
  logLevel: DaemonEnvironment["KILN_LOG_LEVEL"];
  tailscaleBinDir: string | undefined;
  relayFraming: DaemonEnvironment["KILN_RELAY_FRAMING"];
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: { variable: string; message: string }[];

  constructor(problems: { variable: string; message: string }[]) {
    super(`invalid daemon configuration:\n${problems.map((problem) => `  ${problem.variable}: ${problem.message}`).join("\n")}`);
    this.problems = problems;
  }
}

/** Reads the daemon's settings from the environment once, at start; throws `ConfigError` naming every bad variable. */
export function loadConfig(environment: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const result = DaemonEnvironment.safeParse(environment);
  if (!result.success) {
    // Messages only: values may be secrets.
    throw new ConfigError(result.error.issues.map((issue) => ({ variable: issue.path.join("."), message: issue.message })));
  }
  return {
    agentToken: result.data.KILN_AGENT_TOKEN,
    controlPlaneUrl: result.data.KILN_URL,
    workdir: result.data.KILN_WORKDIR,
    stateDir: result.data.KILN_STATE_DIR,
    logLevel: result.data.KILN_LOG_LEVEL,
    tailscaleBinDir: result.data.KILN_TAILSCALE_BIN_DIR,
    relayFraming: result.data.KILN_RELAY_FRAMING,
  };
}
