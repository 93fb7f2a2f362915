import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { ConflictError, InvalidRequestError, NotFoundError } from "../errors.ts";
import { resolvePath } from "../files/paths.ts";
import { LIMITS, type ProcessSignal, type StartProcessRequest } from "../protocol.ts";
import { childEnvironment } from "./environment.ts";
import { ManagedProcess } from "./managed-process.ts";

/** Room for the kill and the pipes closing after a timeout fires. */
const FOREGROUND_WAIT_MARGIN_MS = 1000;

export interface ProcessManagerOptions {
  /** Directory a request's relative `workdir` resolves against, and the default one. */
  root: string;
  log: Logger;
  /** Environment the children inherit (credentials removed); defaults to the daemon's. */
  env?: NodeJS.ProcessEnv;
  /** Finished processes kept per chat scope so their output stays readable. */
  keepFinishedPerScope?: number;
  keepFinishedForMs?: number;
  /** Delay between SIGTERM and SIGKILL on timeout and shutdown. */
  killGraceMs?: number;
}

export interface StartedProcess {
  process: ManagedProcess;
  /** True when the client token matched an earlier start, so nothing new was spawned. */
  attached: boolean;
}

export type StartMode =
  /** The caller waits for the exit; the default timeout applies. */
  | "foreground"
  /** Runs on; only an explicit timeout applies. */
  | "background";

/**
 * Owns the daemon's child processes: starts them, scopes them by chat, keeps
 * finished ones for a while, and kills them all on shutdown.
 */
export class ProcessManager {
  private readonly options: Required<Omit<ProcessManagerOptions, "env">> & { env: NodeJS.ProcessEnv };
  private readonly log: Logger;
  private readonly processes = new Map<string, ManagedProcess>();
  /** `scope NUL token` → the start in progress or done, registered before any await so concurrent retries attach. */
  private readonly tokens = new Map<string, Promise<ManagedProcess>>();
  private stopped = false;

  constructor(options: ProcessManagerOptions) {
    this.options = {
      keepFinishedPerScope: 100,
      keepFinishedForMs: 60 * 60 * 1000,
      killGraceMs: 2000,
      ...options,
      env: options.env ?? process.env,
    };
    this.log = options.log.child({ module: "processes" });
  }

  async start(scope: string, request: StartProcessRequest, mode: StartMode): Promise<StartedProcess> {
    if (this.stopped) throw new Error("process manager is shut down");
    this.prune();
    const timeoutMs = request.timeout_ms ?? (mode === "foreground" ? LIMITS.processDefaultTimeoutMs : undefined);
    if (request.client_token === undefined) {
      return { process: await this.launch(scope, request, timeoutMs), attached: false };
    }

    const key = `${scope}\0${request.client_token}`;
    const existing = this.tokens.get(key);
    if (existing !== undefined) {
      const process = await existing;
      if (process.command !== request.command) {
        throw new ConflictError("client_token_conflict", "client_token was already used for a different command", {
          client_token: request.client_token,
          process_id: process.id,
        });
      }
      return { process, attached: true };
    }
    const launching = this.launch(scope, request, timeoutMs);
    this.tokens.set(key, launching);
    try {
      return { process: await launching, attached: false };
    } catch (error) {
      this.tokens.delete(key);
      throw error;
    }
  }

  /**
   * Starts a command as the API's start request asks: a foreground process is
   * waited for (until it exits or its timeout kills it, or `abort` fires); a
   * background one is returned running.
   */
  async run(scope: string, request: StartProcessRequest, abort?: AbortSignal): Promise<StartedProcess> {
    const mode: StartMode = request.background === true ? "background" : "foreground";
    const started = await this.start(scope, request, mode);
    if (mode === "foreground") {
      // An attached process may have been started without a timeout; wait no longer than this request's.
      const timeoutMs = request.timeout_ms ?? LIMITS.processDefaultTimeoutMs;
      await started.process.waitForExit(timeoutMs + this.options.killGraceMs + FOREGROUND_WAIT_MARGIN_MS, abort);
    }
    return started;
  }

  /** A process of this scope; another scope's process is indistinguishable from an unknown id. */
  get(scope: string, processId: string): ManagedProcess {
    const process = this.processes.get(processId);
    if (process === undefined || process.scope !== scope) {
      throw new NotFoundError("process_not_found", `no process ${processId}`, { process_id: processId });
    }
    return process;
  }

  list(scope: string): ManagedProcess[] {
    this.prune();
    return [...this.processes.values()].filter((process) => process.scope === scope);
  }

  /** Signals the process group, then waits briefly so the result usually shows the exit. */
  async signal(scope: string, processId: string, signal: ProcessSignal): Promise<ManagedProcess> {
    const process = this.get(scope, processId);
    process.signalGroup(signal === "kill" ? "SIGKILL" : "SIGTERM");
    this.log.info({ processId, signal }, "process signalled");
    await process.waitForExit(this.options.killGraceMs);
    return process;
  }

  /** Terminates every process group, escalating to SIGKILL after the grace period. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    const processes = [...this.processes.values()];
    for (const process of processes) process.signalGroup("SIGTERM");
    const grace = this.options.killGraceMs;
    await Promise.all(processes.map((process) => process.waitForExit(grace)));
    for (const process of processes) process.signalGroup("SIGKILL");
    await Promise.all(processes.map((process) => process.waitForExit(grace)));
    this.log.info({ count: processes.length }, "processes shut down");
  }

  private async launch(scope: string, request: StartProcessRequest, timeoutMs: number | undefined): Promise<ManagedProcess> {
    const cwd = await this.resolveWorkdir(request.workdir);
    const process = new ManagedProcess({
      scope,
      command: request.command,
      cwd,
      env: childEnvironment(this.options.env, request.env),
      timeoutMs,
      clientToken: request.client_token,
      killGraceMs: this.options.killGraceMs,
      log: this.log,
    });
    this.processes.set(process.id, process);
    return process;
  }

  private async resolveWorkdir(workdir: string | undefined): Promise<string> {
    const path = resolvePath(this.options.root, workdir ?? ".");
    try {
      if ((await stat(path)).isDirectory()) return path;
    } catch {
      // reported below
    }
    throw new InvalidRequestError("invalid_workdir", `workdir is not an existing directory: ${path}`, { workdir: path });
  }

  /** Drops finished processes past the age limit, and the oldest beyond the per-scope count. */
  private prune(): void {
    const now = performance.now();
    const finishedByScope = new Map<string, ManagedProcess[]>();
    for (const process of this.processes.values()) {
      const endedAt = process.endedAt;
      if (endedAt === undefined) continue;
      if (now - endedAt > this.options.keepFinishedForMs) {
        this.forget(process);
        continue;
      }
      const finished = finishedByScope.get(process.scope) ?? [];
      finished.push(process);
      finishedByScope.set(process.scope, finished);
    }
    for (const finished of finishedByScope.values()) {
      const excess = finished.length - this.options.keepFinishedPerScope;
      if (excess <= 0) continue;
      finished.sort((left, right) => (left.endedAt ?? 0) - (right.endedAt ?? 0));
      for (const process of finished.slice(0, excess)) this.forget(process);
    }
  }

  private forget(process: ManagedProcess): void {
    this.processes.delete(process.id);
    if (process.clientToken !== undefined) this.tokens.delete(`${process.scope}\0${process.clientToken}`);
  }
}
