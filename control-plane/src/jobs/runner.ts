import { randomUUID } from "node:crypto";
import type { DatabaseHandle } from "../db/index.ts";
import type { Logger } from "../logger.ts";
import { appendLogs, claim, finish, heartbeat, JOBS_CHANNEL, JOB_EVENTS_CHANNEL, type Job, type JobType } from "./queue.ts";

export interface JobContext {
  /** Aborted when the job is canceled or this worker loses its lease. */
  signal: AbortSignal;
  log(entry: { level: "debug" | "info" | "warn" | "error"; stage: string; output: string }): void;
}

/** Runs one job; throwing fails it with the error's message. `finish` runs inside the completing transaction. */
export type JobHandler = (job: Job, context: JobContext) => Promise<void>;

export interface JobRunnerOptions {
  database: DatabaseHandle;
  log: Logger;
  handlers: Partial<Record<JobType, JobHandler>>;
  concurrency: number;
  workerId?: string;
  leaseMs?: number;
  pollMs?: number;
}

/** A worker: claims jobs with SKIP LOCKED, wakes on NOTIFY (polling as a fallback), heartbeats its leases. */
export class JobRunner {
  readonly workerId: string;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly active = new Map<string, AbortController>();
  private running = false;
  private wakeUp: (() => void) | null = null;
  private pendingWake = false;
  private unlisten: Array<() => Promise<void>> = [];
  private loop: Promise<void> | null = null;

  constructor(private readonly options: JobRunnerOptions) {
    this.workerId = options.workerId ?? `worker-${randomUUID().slice(0, 8)}`;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollMs = options.pollMs ?? 1_000;
  }

  async start(): Promise<void> {
    if (this.running || this.options.concurrency === 0) return;
    this.running = true;
    this.unlisten.push(await this.options.database.listen(JOBS_CHANNEL, () => this.wake()));
    // A cancel request arrives as an event on the job; abort it if it runs here.
    this.unlisten.push(await this.options.database.listen(JOB_EVENTS_CHANNEL, (jobId) => {
      if (this.active.has(jobId)) void this.checkCanceled(jobId);
    }));
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    for (const unlisten of this.unlisten) await unlisten().catch(() => {});
    this.unlisten = [];
    await this.loop;
    for (const controller of this.active.values()) controller.abort(new Error("server shutting down"));
  }

  wake(): void {
    this.pendingWake = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    const types = Object.keys(this.options.handlers) as JobType[];
    while (this.running) {
      this.pendingWake = false;
      while (this.running && this.active.size < this.options.concurrency) {
        let job: Job | null = null;
        try {
          job = await claim(this.options.database.db, this.workerId, this.leaseMs, types);
        } catch (error) {
          this.options.log.warn({ err: error }, "job claim failed");
        }
        if (!job) break;
        this.execute(job);
      }
      if (!this.running) break;
      if (this.pendingWake && this.active.size < this.options.concurrency) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
    }
  }

  private execute(job: Job): void {
    const controller = new AbortController();
    this.active.set(job.id, controller);
    const log = this.options.log.child({ jobId: job.id, jobType: job.type });
    const buffered: Parameters<JobContext["log"]>[0][] = [];
    let flushing: Promise<void> = Promise.resolve();
    const flush = () => {
      const entries = buffered.splice(0);
      flushing = flushing.then(() => appendLogs(this.options.database, job.id, entries)).catch((error) => log.warn({ err: error }, "job log write failed"));
      return flushing;
    };
    const flushTimer = setInterval(() => void flush(), 100);
    const heartbeatTimer = setInterval(async () => {
      const status = await heartbeat(this.options.database.db, job.id, this.workerId, this.leaseMs).catch(() => "running" as const);
      if (status === null) controller.abort(new Error("lease lost"));
      if (status === "canceling") controller.abort(new Error("canceled"));
    }, Math.max(50, Math.floor(this.leaseMs / 3)));

    const handler = this.options.handlers[job.type]!;
    log.info({ attempt: job.attempts }, "job started");
    void (async () => {
      let outcome: Parameters<typeof finish>[3];
      try {
        await handler(job, { signal: controller.signal, log: (entry) => buffered.push(entry) });
        outcome = controller.signal.aborted ? { status: "canceled" } : { status: "succeeded" };
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        outcome = controller.signal.aborted ? { status: "canceled" } : { status: "failed", error: message };
        if (outcome.status === "failed") buffered.push({ level: "error", stage: "error", output: message });
      }
      clearInterval(flushTimer);
      clearInterval(heartbeatTimer);
      await flush();
      await finish(this.options.database.db, job.id, this.workerId, outcome).catch((error) => log.error({ err: error }, "job completion write failed"));
      await this.options.database.notify(JOB_EVENTS_CHANNEL, job.id).catch(() => {});
      log.info({ status: outcome.status }, "job finished");
      this.active.delete(job.id);
      this.wake();
    })();
  }

  private async checkCanceled(jobId: string): Promise<void> {
    const status = await heartbeat(this.options.database.db, jobId, this.workerId, this.leaseMs).catch(() => null);
    if (status === "canceling") this.active.get(jobId)?.abort(new Error("canceled"));
  }
}
