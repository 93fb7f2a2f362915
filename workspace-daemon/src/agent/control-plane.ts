import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { AgentManifest, type AgentLogEntry, type AgentMetadataResult, type AgentScriptRun, type TailnetJoin } from "./protocol.ts";

export type { TailnetJoin };

export type LifecycleState = "created" | "starting" | "start_timeout" | "start_error" | "ready" | "shutting_down" | "shutdown_timeout" | "shutdown_error" | "off";

/** The daemon's calls to the control plane (lifecycle reports), authenticated with the build's agent token. */
export class ControlPlaneClient {
  constructor(private readonly options: { url: string; token: string; log: Logger; version: string; directory: string }) {}

  /** Reports a lifecycle state, retrying with backoff while the control plane is unreachable; gives up on 4xx. */
  async reportLifecycle(state: LifecycleState, options: { attempts?: number } = {}): Promise<boolean> {
    const attempts = options.attempts ?? 30;
    let delay = 200;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const response = await fetch(`${this.options.url}/api/v1/agent/lifecycle`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.options.token}`, "content-type": "application/json" },
          body: JSON.stringify({ state, version: this.options.version, operating_system: os.platform(), architecture: os.arch(), directory: this.options.directory }),
          signal: AbortSignal.timeout(10_000),
        });
        if (response.ok) return true;
        if (response.status >= 400 && response.status < 500) {
          this.options.log.warn({ state, status: response.status }, "control plane refused lifecycle report");
          return false;
        }
      } catch (error) {
        if (attempt === 1 || attempt === attempts) this.options.log.warn({ state, attempt, err: error }, "lifecycle report failed; retrying");
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 5_000);
    }
    return false;
  }

  /** The agent's manifest; `config` stays null until the build has recorded what the agent runs. */
  async manifest(options: { waitMs?: number } = {}): Promise<AgentManifest> {
    const waitMs = options.waitMs ?? 0;
    const response = await fetch(`${this.options.url}/api/v1/agent/manifest${waitMs ? `?wait_ms=${waitMs}` : ""}`, {
      headers: { authorization: `Bearer ${this.options.token}` },
      signal: AbortSignal.timeout(10_000 + waitMs),
    });
    if (!response.ok) throw new HttpError(response.status, `manifest: HTTP ${response.status}`);
    return AgentManifest.parse(await response.json());
  }

  /** Key, credential and where to join the tailnet for this build; HttpError 409 when the deployment has none. */
  async tailnetJoin(): Promise<TailnetJoin> {
    const response = await fetch(`${this.options.url}/api/v1/agent/tailnet/join`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.options.token}` },
      signal: AbortSignal.timeout(15_000),
    });
    if (!response.ok) throw new HttpError(response.status, `tailnet join: HTTP ${response.status}: ${(await response.text()).slice(0, 500)}`);
    return (await response.json()) as TailnetJoin;
  }

  /** Where the daemon serves on the tailnet, or why it could not join. */
  async reportTailnet(body: { address: string; port: number; ssh_port?: number } | { error: string }): Promise<void> {
    const response = await fetch(`${this.options.url}/api/v1/agent/tailnet`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.options.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new HttpError(response.status, `tailnet report: HTTP ${response.status}: ${(await response.text()).slice(0, 500)}`);
  }

  /** Posts a batch; throws so the caller keeps it for a retry. 4xx other than 429 are not worth retrying. */
  async post(path: "/logs" | "/metadata" | "/script-runs", body: { logs: AgentLogEntry[] } | { metadata: AgentMetadataResult[] } | { runs: AgentScriptRun[] }): Promise<void> {
    const response = await fetch(`${this.options.url}/api/v1/agent${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.options.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) throw new HttpError(response.status, `${path}: HTTP ${response.status}`);
  }
}

export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(readonly status: number, message: string) {
    super(message);
  }

  get retryable(): boolean {
    return this.status >= 500 || this.status === 429;
  }
}
