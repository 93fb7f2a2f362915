import { z } from "zod";

/**
 * The daemon's calls to the control plane about the agent's duties: what to run (the manifest),
 * script output, metadata values, script runs. Shared by the daemon and the control plane's routes.
 */

export const AgentScript = z.object({
  display_name: z.string(),
  script: z.string(),
  run_on_start: z.boolean(),
  run_on_stop: z.boolean(),
  /** The agent is `ready` only after every blocking start script has finished. */
  start_blocks_login: z.boolean(),
  /** 0: no limit. */
  timeout_seconds: z.number().int().min(0),
  /** Six- or five-field cron expression for a recurring script; empty for none. */
  cron: z.string().default(""),
  /** Where the script's output is also written, relative to the log directory; empty for the default. */
  log_path: z.string().default(""),
});
export type AgentScript = z.infer<typeof AgentScript>;

export const AgentMetadataDefinition = z.object({
  key: z.string(),
  display_name: z.string(),
  script: z.string(),
  interval_seconds: z.number().int().min(1),
  timeout_seconds: z.number().int().min(1),
});
export type AgentMetadataDefinition = z.infer<typeof AgentMetadataDefinition>;

export const AgentConfig = z.object({
  /** The agent's `dir`: scripts run here. Null: the daemon's work directory. */
  directory: z.string().nullable(),
  /** coder_agent `env`, set for scripts and every process the daemon starts. */
  env: z.record(z.string(), z.string()),
  scripts: z.array(AgentScript),
  metadata: z.array(AgentMetadataDefinition),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

export const AgentManifest = z.object({
  agent_id: z.string(),
  agent_name: z.string(),
  workspace_id: z.string(),
  workspace_name: z.string(),
  owner_name: z.string(),
  /** Null until the build that created this agent has finished recording it; ask again. */
  config: AgentConfig.nullable(),
});
export type AgentManifest = z.infer<typeof AgentManifest>;

export const AgentLogEntry = z.object({
  /** Script display name, or `agent`. */
  source: z.string().min(1).max(256),
  level: z.enum(["debug", "info", "warn", "error"]),
  output: z.string().max(64 * 1024),
  created_at: z.string(),
});
export type AgentLogEntry = z.infer<typeof AgentLogEntry>;
export const AgentLogsRequest = z.object({ logs: z.array(AgentLogEntry).max(1000) });

export const AgentMetadataResult = z.object({
  key: z.string().min(1).max(256),
  value: z.string().max(64 * 1024),
  error: z.string().max(4096).nullable(),
  collected_at: z.string(),
});
export type AgentMetadataResult = z.infer<typeof AgentMetadataResult>;
export const AgentMetadataRequest = z.object({ metadata: z.array(AgentMetadataResult).max(1000) });

export const AgentScriptRun = z.object({
  script: z.string().min(1).max(256),
  stage: z.enum(["start", "stop", "cron"]),
  status: z.enum(["ok", "exit_failure", "timed_out", "start_failure"]),
  exit_code: z.number().int().nullable(),
  started_at: z.string(),
  ended_at: z.string(),
});
export type AgentScriptRun = z.infer<typeof AgentScriptRun>;

/** What a daemon needs to join the tailnet for its build (the body of `POST /api/v1/agent/tailnet/join`). */
export interface TailnetJoin {
  login_server: string;
  /** Single-use, ephemeral, tagged preauth key; expires in 10 minutes. */
  auth_key: string;
  /** The control plane presents this on every request; the daemon refuses requests without it. */
  credential: string;
  hostname: string;
  /** Serve the API on the first free port in this range (the ACL policy allows exactly these). */
  ports: { first: number; last: number };
  /** Serve SSH for the owner's own devices on the first free port in this range; null when device SSH is off. */
  ssh_ports: { first: number; last: number } | null;
  /** Loopback/plain-HTTP DERP (the embedded headscale without TLS) needs TS_DEBUG_USE_DERP_HTTP=1. */
  derp_over_http: boolean;
}
