import { and, eq, inArray, sql } from "drizzle-orm";
import { queryRows, type Database, type DatabaseHandle, type Executor } from "../db/index.ts";
import { provisionerJobLogs, provisionerJobs } from "../db/schema.ts";

export type Job = typeof provisionerJobs.$inferSelect;
export type JobType = Job["type"];
export type JobStatus = Job["status"];

/** NOTIFY channels: new work, and new log lines / status changes of one job (payload: job id). */
export const JOBS_CHANNEL = "kiln_jobs";
export const JOB_EVENTS_CHANNEL = "kiln_job_events";

/** Inserts a pending job. Call `wake` after the surrounding transaction commits. */
export async function enqueue(executor: Executor, type: JobType, input: Record<string, unknown>): Promise<Job> {
  const [job] = await executor.insert(provisionerJobs).values({ type, input }).returning();
  return job!;
}

export async function wake(database: DatabaseHandle, jobId: string): Promise<void> {
  await database.notify(JOBS_CHANNEL, jobId);
}

/**
 * Claims the oldest runnable job: pending, or running with an expired lease (its worker died).
 * SKIP LOCKED lets any number of workers poll the same table without blocking each other.
 */
export async function claim(db: Database, workerId: string, leaseMs: number, types: JobType[]): Promise<Job | null> {
  const rows = await queryRows<{ id: string }>(db, sql`
    UPDATE provisioner_jobs
       SET status = 'running', worker_id = ${workerId}, attempts = attempts + 1,
           lease_expires_at = now() + make_interval(secs => ${leaseMs / 1000}),
           started_at = coalesce(started_at, now())
     WHERE id = (
       SELECT id FROM provisioner_jobs
        WHERE type IN (${sql.join(types.map((type) => sql`${type}`), sql`, `)})
          AND (status = 'pending' OR (status = 'running' AND lease_expires_at < now()))
        ORDER BY created_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING id`);
  const id = rows[0]?.id;
  if (!id) return null;
  const [job] = await db.select().from(provisionerJobs).where(eq(provisionerJobs.id, id));
  return job ?? null;
}

/** Extends the lease; returns the job's status, or null when this worker no longer holds it. */
export async function heartbeat(db: Database, jobId: string, workerId: string, leaseMs: number): Promise<JobStatus | null> {
  const rows = await db.update(provisionerJobs)
    .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseMs / 1000})` })
    .where(and(eq(provisionerJobs.id, jobId), eq(provisionerJobs.workerId, workerId), inArray(provisionerJobs.status, ["running", "canceling"])))
    .returning({ status: provisionerJobs.status });
  return rows[0]?.status ?? null;
}

export async function finish(
  executor: Executor,
  jobId: string,
  workerId: string,
  outcome: { status: "succeeded" } | { status: "failed"; error: string } | { status: "canceled" },
): Promise<boolean> {
  const rows = await executor.update(provisionerJobs)
    .set({ status: outcome.status, error: "error" in outcome ? outcome.error : null, completedAt: new Date(), leaseExpiresAt: null })
    .where(and(eq(provisionerJobs.id, jobId), eq(provisionerJobs.workerId, workerId), inArray(provisionerJobs.status, ["running", "canceling"])))
    .returning({ id: provisionerJobs.id });
  return rows.length > 0;
}

/** Pending jobs are canceled at once; running ones move to `canceling` and their worker aborts them. */
export async function requestCancel(database: DatabaseHandle, jobId: string): Promise<JobStatus | null> {
  const status = await database.db.transaction(async (transaction) => {
    const [job] = await transaction.select().from(provisionerJobs).where(eq(provisionerJobs.id, jobId)).for("update");
    if (!job) return null;
    if (job.status === "pending") {
      await transaction.update(provisionerJobs).set({ status: "canceled", completedAt: new Date() }).where(eq(provisionerJobs.id, jobId));
      return "canceled" as const;
    }
    if (job.status === "running") {
      await transaction.update(provisionerJobs).set({ status: "canceling" }).where(eq(provisionerJobs.id, jobId));
      return "canceling" as const;
    }
    return job.status;
  });
  await database.notify(JOB_EVENTS_CHANNEL, jobId);
  return status;
}

export async function appendLogs(database: DatabaseHandle, jobId: string, entries: { level: "debug" | "info" | "warn" | "error"; stage: string; output: string }[]): Promise<void> {
  if (entries.length === 0) return;
  await database.db.insert(provisionerJobLogs).values(entries.map((entry) => ({ jobId, ...entry })));
  await database.notify(JOB_EVENTS_CHANNEL, jobId);
}

export async function logsAfter(db: Database, jobId: string, afterId: number, limit = 1000) {
  return db.select().from(provisionerJobLogs)
    .where(and(eq(provisionerJobLogs.jobId, jobId), sql`${provisionerJobLogs.id} > ${afterId}`))
    .orderBy(provisionerJobLogs.id).limit(limit);
}
