import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { HttpError, type ControlPlaneClient, type LifecycleState } from "./control-plane.ts";
import { parseSchedule } from "./cron.ts";
import type { AgentConfig, AgentLogEntry, AgentMetadataDefinition, AgentMetadataResult, AgentScript, AgentScriptRun } from "./protocol.ts";
import { runScript } from "./scripts.ts";

export interface AgentDutiesOptions {
  client: Pick<ControlPlaneClient, "manifest" | "post">;
  log: Logger;
  /** The daemon's work directory: scripts run here unless the agent names a `dir`. */
  workdir: string;
  /**
   * The environment the daemon's children get. The agent's `env` is merged into this very object,
   * which the process, PTY and SSH managers read whenever they start something.
   */
  environment: NodeJS.ProcessEnv;
  /** How long to wait for the build to record the agent's configuration before running without it. */
  configWaitMs?: number;
  flushIntervalMs?: number;
}

/**
 * What a Coder agent does besides serving the workspace: runs the template's startup scripts (the
 * blocking ones decide when the agent is `ready`), its cron scripts, its metadata scripts at their
 * intervals, its shutdown scripts on the way out, and reports output, values and runs to the control plane.
 */
export class AgentDuties {
  private config: AgentConfig | null = null;
  private readonly logs = new Batcher<AgentLogEntry>("/logs", "logs", 10_000);
  private readonly metadata = new Batcher<AgentMetadataResult>("/metadata", "metadata", 1_000);
  private readonly runs = new Batcher<AgentScriptRun>("/script-runs", "runs", 1_000);
  private readonly stopped = new AbortController();
  private readonly background: Promise<unknown>[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly options: AgentDutiesOptions) {
    this.log = options.log.child({ module: "agent-duties" });
  }

  /** Waits for the configuration, runs start scripts; resolves with the lifecycle state to report. */
  async start(): Promise<LifecycleState> {
    this.flushTimer = setInterval(() => void this.flush(), this.options.flushIntervalMs ?? 250);
    this.config = await this.waitForConfig();
    if (!this.config) return "ready";
    Object.assign(this.options.environment, this.config.env);
    for (const definition of this.config.metadata) this.background.push(this.collectMetadata(definition));
    for (const script of this.config.scripts.filter((candidate) => candidate.cron)) this.background.push(this.runOnSchedule(script));

    const starting = this.config.scripts.filter((script) => script.run_on_start);
    const blocking: Promise<AgentScriptRun>[] = [];
    for (const script of starting) {
      const run = this.run(script, "start");
      if (script.start_blocks_login) blocking.push(run);
      else this.background.push(run);
    }
    const results = await Promise.all(blocking);
    if (results.some((result) => result.status === "timed_out")) return "start_timeout";
    if (results.some((result) => result.status !== "ok")) return "start_error";
    return "ready";
  }

  /** Stops recurring work, runs shutdown scripts; resolves with the lifecycle state to report. */
  async stop(): Promise<LifecycleState> {
    this.stopped.abort();
    let state: LifecycleState = "off";
    if (this.config) {
      const results = await Promise.all(this.config.scripts.filter((script) => script.run_on_stop).map((script) => this.run(script, "stop", false)));
      if (results.some((result) => result.status === "timed_out")) state = "shutdown_timeout";
      else if (results.some((result) => result.status !== "ok")) state = "shutdown_error";
    }
    if (this.flushTimer) clearInterval(this.flushTimer);
    // Drain what is left (the shutdown scripts' output above all), a few batches at most.
    for (let round = 0; round < 5 && this.pending() > 0; round++) await this.flush();
    return state;
  }

  private directory(): string {
    const configured = this.config?.directory;
    if (!configured) return this.options.workdir;
    const expanded = configured.replace(/^~(?=$|\/)/, os.homedir()).replace(/^\$HOME(?=$|\/)/, os.homedir());
    return path.resolve(this.options.workdir, expanded);
  }

  private async waitForConfig(): Promise<AgentConfig | null> {
    const deadline = Date.now() + (this.options.configWaitMs ?? 10 * 60_000);
    let delay = 50;
    while (Date.now() < deadline && !this.stopped.signal.aborted) {
      try {
        // The control plane holds the request until the build has recorded the configuration (or 20 s pass).
        const manifest = await this.options.client.manifest({ waitMs: 20_000 });
        if (manifest.config) return manifest.config;
      } catch (error) {
        if (error instanceof HttpError && !error.retryable) {
          this.log.warn({ status: error.status }, "control plane refused the manifest request; running without scripts");
          return null;
        }
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 1_000);
    }
    this.log.warn("no agent configuration arrived; running without scripts");
    return null;
  }

  private async run(script: AgentScript, stage: AgentScriptRun["stage"], stoppable = true): Promise<AgentScriptRun> {
    this.log.info({ script: script.display_name, stage }, "script started");
    const result = await runScript({
      script, stage, cwd: this.directory(), env: { ...this.options.environment }, signal: stoppable ? this.stopped.signal : undefined,
      output: (entry) => this.logs.push({ ...entry, created_at: new Date().toISOString() }),
    });
    this.log.info({ script: script.display_name, stage, status: result.status, exitCode: result.exit_code }, "script finished");
    this.logs.push({ source: script.display_name, level: result.status === "ok" ? "info" : "error", output: `script ${describe(result)}`, created_at: result.ended_at });
    this.runs.push(result);
    return result;
  }

  private async runOnSchedule(script: AgentScript): Promise<void> {
    let schedule;
    try {
      schedule = parseSchedule(script.cron);
    } catch (error) {
      this.logs.push({ source: script.display_name, level: "error", output: (error as Error).message, created_at: new Date().toISOString() });
      return;
    }
    while (!this.stopped.signal.aborted) {
      const wait = schedule.next(new Date()).getTime() - Date.now();
      await sleep(Math.max(0, wait), undefined, { signal: this.stopped.signal }).catch(() => {});
      if (this.stopped.signal.aborted) return;
      await this.run(script, "cron");
    }
  }

  private async collectMetadata(definition: AgentMetadataDefinition): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const started = Date.now();
      const result = await collectOnce(definition, this.directory(), { ...this.options.environment });
      this.metadata.push(result);
      const wait = definition.interval_seconds * 1000 - (Date.now() - started);
      await sleep(Math.max(0, wait), undefined, { signal: this.stopped.signal }).catch(() => {});
    }
  }

  private pending(): number {
    return this.logs.size + this.metadata.size + this.runs.size;
  }

  private async flush(): Promise<void> {
    await Promise.all([this.logs, this.metadata, this.runs].map((batcher) => batcher.flush(this.options.client, this.log)));
  }
}

function describe(result: AgentScriptRun): string {
  const seconds = ((Date.parse(result.ended_at) - Date.parse(result.started_at)) / 1000).toFixed(1);
  switch (result.status) {
    case "ok": return `finished in ${seconds} s`;
    case "exit_failure": return `failed with exit code ${result.exit_code} after ${seconds} s`;
    case "timed_out": return `timed out after ${seconds} s`;
    case "start_failure": return "could not start";
  }
}

/** One run of a metadata script: its trimmed output, or the error. */
export function collectOnce(definition: AgentMetadataDefinition, cwd: string, env: NodeJS.ProcessEnv): Promise<AgentMetadataResult> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", definition.script], { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid ?? 0), "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    }, definition.timeout_seconds * 1000);
    child.stdout.on("data", (chunk: Buffer) => (stdout = (stdout + chunk.toString("utf8")).slice(0, 64 * 1024)));
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(0, 4096)));
    const done = (error: string | null) => {
      clearTimeout(timer);
      resolve({ key: definition.key, value: stdout.trim(), error, collected_at: new Date().toISOString() });
    };
    child.on("error", (error) => done(error.message));
    child.on("close", (code) => {
      if (timedOut) done(`timed out after ${definition.timeout_seconds} s`);
      else if (code !== 0) done(stderr.trim() || `exit code ${code}`);
      else done(null);
    });
  });
}

/** Collects items and posts them in order; keeps them across failed posts, dropping the oldest past a cap. */
class Batcher<Item> {
  private items: Item[] = [];
  private sending: Promise<void> | null = null;
  private dropped = 0;

  constructor(private readonly path: "/logs" | "/metadata" | "/script-runs", private readonly field: "logs" | "metadata" | "runs", private readonly cap: number) {}

  get size(): number {
    return this.items.length;
  }

  push(item: Item): void {
    this.items.push(item);
    if (this.items.length > this.cap) {
      this.items.shift();
      this.dropped++;
    }
  }

  async flush(client: AgentDutiesOptions["client"], log: Logger): Promise<void> {
    if (this.sending) return this.sending;
    if (this.items.length === 0) return;
    const batch = this.items.slice(0, 500);
    this.sending = (async () => {
      try {
        await client.post(this.path, { [this.field]: batch } as never);
        this.items.splice(0, batch.length);
      } catch (error) {
        if (error instanceof HttpError && !error.retryable) {
          log.warn({ status: error.status, path: this.path, count: batch.length }, "control plane refused a report; dropping it");
          this.items.splice(0, batch.length);
        }
      } finally {
        this.sending = null;
      }
      if (this.dropped > 0) {
        log.warn({ path: this.path, dropped: this.dropped }, "reports dropped while the control plane was unreachable");
        this.dropped = 0;
      }
    })();
    return this.sending;
  }
}
