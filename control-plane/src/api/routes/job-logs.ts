import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { eq } from "drizzle-orm";
import type { DatabaseHandle } from "../../db/index.ts";
import { provisionerJobs } from "../../db/schema.ts";
import { JOB_EVENTS_CHANNEL, logsAfter } from "../../jobs/queue.ts";

const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

type LogRow = Awaited<ReturnType<typeof logsAfter>>[number];
export const presentJobLog = (row: LogRow) => ({ id: row.id, created_at: row.createdAt.toISOString(), level: row.level, stage: row.stage, output: row.output });

async function jobStatus(database: DatabaseHandle, jobId: string): Promise<string> {
  return (await database.db.select({ status: provisionerJobs.status }).from(provisionerJobs).where(eq(provisionerJobs.id, jobId)))[0]?.status ?? "failed";
}

/** A job's logs: JSON, or with `follow` an SSE stream (`log`, `status`, `end`) that resumes after Last-Event-ID. */
export async function jobLogsResponse(c: Context, database: DatabaseHandle, jobId: string, options: { after?: number; follow?: boolean }): Promise<Response> {
  let after = options.after ?? (Number(c.req.header("last-event-id") ?? 0) || 0);
  if (!options.follow) {
    return c.json({ logs: (await logsAfter(database.db, jobId, after, 10_000)).map(presentJobLog), job_status: await jobStatus(database, jobId) }, 200);
  }
  return streamSSE(c, async (stream) => {
    let wake: () => void = () => {};
    const unlisten = await database.listen(JOB_EVENTS_CHANNEL, (id) => id === jobId && wake());
    stream.onAbort(() => wake());
    try {
      while (!stream.aborted) {
        const signal = new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 15_000);
        });
        const status = await jobStatus(database, jobId);
        for (const row of await logsAfter(database.db, jobId, after)) {
          await stream.writeSSE({ id: String(row.id), event: "log", data: JSON.stringify(presentJobLog(row)) });
          after = row.id;
        }
        if (TERMINAL.has(status)) {
          await stream.writeSSE({ event: "end", data: JSON.stringify({ job_status: status }) });
          return;
        }
        await stream.writeSSE({ event: "status", data: JSON.stringify({ job_status: status }) });
        await signal;
      }
    } finally {
      await unlisten();
    }
  });
}
