import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { ProcessResult, ProcessSummary } from "../protocol.ts";
import { OutputBuffer } from "./output-buffer.ts";

export type ProcessEvent =
  | { type: "output"; stream: "stdout" | "stderr"; data: Buffer }
  | { type: "exit"; exitCode: number | null; signal: string | null; timedOut: boolean };

export interface LaunchOptions {
  scope: string;
  command: string;
  cwd: string;
  env: Record<string, string>;
  /** Kill the process group after this long; undefined runs without a limit. */
  timeoutMs: number | undefined;
  clientToken: string | undefined;
  /** Delay between SIGTERM and SIGKILL when a timeout ends the process. */
  killGraceMs: number;
  log: Logger;
}

/**
 * Once the shell has exited, how long to wait for its pipes to close. A
 * backgrounded grandchild (`server &`) can hold them open indefinitely.
 */
const PIPE_CLOSE_GRACE_MS = 200;

/** One `sh -c` command in its own process group, with its bounded output and exit status. */
export class ManagedProcess {
  readonly id = randomUUID();
  readonly scope: string;
  readonly command: string;
  readonly clientToken: string | undefined;
  readonly startedAt = new Date();
  private readonly startedAtMs = performance.now();
  private endedAtMs: number | undefined;
  private readonly output = new OutputBuffer();
  private readonly listeners = new Set<(event: ProcessEvent) => void>();
  private readonly child: ChildProcess;
  private readonly log: Logger;
  private readonly killGraceMs: number;
  private exitCode: number | null = null;
  private exitSignal: string | null = null;
  private timedOut = false;
  private shellExited = false;
  private pipesClosed = false;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private resolveFinished!: () => void;
  /** Settles when the process has exited and its output has been collected. */
  readonly finished = new Promise<void>((resolve) => {
    this.resolveFinished = resolve;
  });

  constructor(options: LaunchOptions) {
    this.scope = options.scope;
    this.command = options.command;
    this.clientToken = options.clientToken;
    this.killGraceMs = options.killGraceMs;
    this.log = options.log;

    this.child = spawn("sh", ["-c", options.command], {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so a signal to -pid reaches everything it started.
      detached: true,
    });
    this.child.stdout?.on("data", (data: Buffer) => this.receive("stdout", data));
    this.child.stderr?.on("data", (data: Buffer) => this.receive("stderr", data));
    this.child.once("exit", (code, signal) => this.onShellExit(code, signal));
    this.child.once("close", () => {
      this.pipesClosed = true;
      this.finish();
    });
    this.child.once("error", (error) => {
      this.log.warn({ err: error, processId: this.id }, "process spawn failed");
      this.output.append(Buffer.from(`failed to start: ${error.message}\n`));
      this.shellExited = true;
      this.pipesClosed = true;
      this.finish();
    });

    if (options.timeoutMs !== undefined) {
      this.timeoutTimer = setTimeout(() => {
        this.timedOut = true;
        this.log.info({ processId: this.id, timeoutMs: options.timeoutMs }, "process timed out");
        this.terminate();
      }, options.timeoutMs);
      this.timeoutTimer.unref();
    }
    this.log.info({ processId: this.id, pid: this.child.pid, scope: this.scope }, "process started");
  }

  get running(): boolean {
    return this.endedAtMs === undefined;
  }

  /** performance.now() when the process finished, for retention. */
  get endedAt(): number | undefined {
    return this.endedAtMs;
  }

  /** SIGTERM to the group, then SIGKILL if anything in it still holds the pipes after the grace period. */
  terminate(): void {
    this.signalGroup("SIGTERM");
    const escalate = setTimeout(() => {
      if (!this.pipesClosed) this.signalGroup("SIGKILL");
    }, this.killGraceMs);
    escalate.unref();
  }

  kill(): void {
    this.signalGroup("SIGKILL");
  }

  signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined || this.pipesClosed) return;
    try {
      process.kill(-pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
    }
  }

  /** Resolves when the process finishes, `timeoutMs` passes, or `abort` fires, whichever is first. */
  async waitForExit(timeoutMs: number, abort?: AbortSignal): Promise<void> {
    if (!this.running || timeoutMs <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      this.finished,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        onAbort = resolve;
        abort?.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) abort?.removeEventListener("abort", onAbort);
  }

  /** Live output and the exit; returns the unsubscribe function. */
  subscribe(listener: (event: ProcessEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops reading the pipes, so a slow consumer holds the process back instead of buffering without bound. */
  pauseOutput(): void {
    this.child.stdout?.pause();
    this.child.stderr?.pause();
  }

  resumeOutput(): void {
    this.child.stdout?.resume();
    this.child.stderr?.resume();
  }

  summary(): ProcessSummary {
    const { output: _output, ...summary } = this.result();
    return summary;
  }

  result(): ProcessResult {
    const snapshot = this.output.snapshot();
    return {
      process_id: this.id,
      command: this.command,
      running: this.running,
      exit_code: this.exitCode,
      signal: this.exitSignal,
      output: snapshot.text,
      truncated: snapshot.truncated,
      omitted_bytes: snapshot.omittedBytes,
      wall_duration_ms: Math.round((this.endedAtMs ?? performance.now()) - this.startedAtMs),
      timed_out: this.timedOut,
      started_at: this.startedAt.toISOString(),
    };
  }

  private receive(stream: "stdout" | "stderr", data: Buffer): void {
    this.output.append(data);
    if (!this.running) return;
    for (const listener of this.listeners) listener({ type: "output", stream, data });
  }

  private onShellExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.shellExited = true;
    this.exitCode = code;
    this.exitSignal = signal;
    clearTimeout(this.timeoutTimer);
    setTimeout(() => this.finish(), PIPE_CLOSE_GRACE_MS).unref();
  }

  private finish(): void {
    if (!this.shellExited || this.endedAtMs !== undefined) return;
    this.endedAtMs = performance.now();
    clearTimeout(this.timeoutTimer);
    this.log.info(
      {
        processId: this.id,
        exitCode: this.exitCode,
        signal: this.exitSignal,
        timedOut: this.timedOut,
        durationMs: Math.round(this.endedAtMs - this.startedAtMs),
      },
      "process exited",
    );
    const event: ProcessEvent = { type: "exit", exitCode: this.exitCode, signal: this.exitSignal, timedOut: this.timedOut };
    for (const listener of this.listeners) listener(event);
    this.listeners.clear();
    this.resolveFinished();
  }
}
