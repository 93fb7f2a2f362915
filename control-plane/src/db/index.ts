import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql, type SQL } from "drizzle-orm";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import pg from "pg";
import * as schema from "./schema.ts";

export { schema };
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction has the same query surface as the database. */
export type Executor = Pick<Database, "select" | "insert" | "update" | "delete" | "execute" | "transaction">;

export const migrationsFolder = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../migrations");

export interface DatabaseHandle {
  readonly kind: "postgres" | "pglite";
  readonly db: Database;
  /**
   * A connection of its own for short statements that must not wait behind the pool's queue (the
   * chat worker's claims and lease renewals). On PGlite, the same as `db`.
   */
  readonly control: Database;
  /** Subscribes to a NOTIFY channel; returns an unsubscribe function. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  /** Sends a NOTIFY; the ones issued in the same event-loop turn share one statement. */
  notify(channel: string, payload?: string): Promise<void>;
  close(): Promise<void>;
}

export type DatabaseConfig = { postgresUrl: string } | { pgliteDir: string | null };

interface Logger { warn(object: object, message: string): void }

export async function openDatabase(config: DatabaseConfig, log?: Logger): Promise<DatabaseHandle> {
  const handle = "postgresUrl" in config ? openPostgres(config.postgresUrl, log) : await openPglite(config.pgliteDir);
  try {
    if ("postgresUrl" in config) await migratePostgres(handle, config.postgresUrl);
    else await migratePglite(handle.db as never, { migrationsFolder });
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

function openPostgres(url: string, log?: Logger): DatabaseHandle {
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  pool.on("error", (error) => log?.warn({ err: error }, "postgres pool error"));
  const db = drizzlePg(pool, { schema, casing: "snake_case" }) as unknown as Database;
  const controlPool = new pg.Pool({ connectionString: url, max: 1 });
  controlPool.on("error", (error) => log?.warn({ err: error }, "postgres control connection error"));
  const control = drizzlePg(controlPool, { schema, casing: "snake_case" }) as unknown as Database;
  const listeners = new Map<string, Set<(payload: string) => void>>();
  let listenClient: Promise<pg.Client> | null = null;
  let closed = false;

  // One dedicated connection carries every LISTEN; it is re-established if it drops.
  const connectListener = (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: url });
    client.on("notification", (message) => {
      for (const listener of listeners.get(message.channel) ?? []) listener(message.payload ?? "");
    });
    client.on("error", (error) => {
      log?.warn({ err: error }, "postgres listen connection lost");
      listenClient = null;
      if (!closed && listeners.size > 0) setTimeout(() => void ensureListener().catch(() => {}), 500);
    });
    return client.connect().then(async () => {
      for (const channel of listeners.keys()) await client.query(`LISTEN "${channel}"`);
      return client;
    });
  };
  const ensureListener = (): Promise<pg.Client> => {
    listenClient ??= connectListener();
    return listenClient;
  };

  return {
    kind: "postgres",
    db,
    control,
    async listen(channel, onNotify) {
      assertChannel(channel);
      let set = listeners.get(channel);
      const isNew = !set;
      if (!set) listeners.set(channel, (set = new Set()));
      set.add(onNotify);
      const client = await ensureListener();
      if (isNew) await client.query(`LISTEN "${channel}"`);
      return async () => {
        set.delete(onNotify);
        if (set.size === 0 && listeners.get(channel) === set) {
          listeners.delete(channel);
          if (!closed) await client.query(`UNLISTEN "${channel}"`).catch(() => {});
        }
      };
    },
    notify: notifier(db),
    async close() {
      closed = true;
      const client = listenClient;
      listenClient = null;
      if (client) await (await client.catch(() => null))?.end().catch(() => {});
      await Promise.all([pool.end(), controlPool.end()]);
    },
  };
}

async function openPglite(dataDir: string | null): Promise<DatabaseHandle> {
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const client = dataDir ? new PGlite(dataDir) : new PGlite();
  await client.waitReady;
  const db = drizzlePglite(client, { schema, casing: "snake_case" }) as unknown as Database;
  return {
    kind: "pglite",
    db,
    control: db,
    async listen(channel, onNotify) {
      assertChannel(channel);
      const unsubscribe = await client.listen(channel, onNotify);
      return async () => unsubscribe();
    },
    notify: notifier(db),
    async close() {
      await client.close();
    },
  };
}

/** Bounds one statement's parameters (two per notification). */
const NOTIFY_BATCH = 500;

/**
 * Coalesces the NOTIFYs of one event-loop turn into one `SELECT pg_notify(…), pg_notify(…)`: each
 * statement is a pool checkout and a round trip, and a chat step publishes several events at once.
 * Postgres delivers them in order; identical channel+payload pairs in one statement arrive once,
 * which is what NOTIFY does within a transaction anyway.
 */
function notifier(db: Database): DatabaseHandle["notify"] {
  let pending: { channel: string; payload: string }[] = [];
  let flushed: Promise<void> | null = null;
  const flush = async (batch: { channel: string; payload: string }[]) => {
    for (let start = 0; start < batch.length; start += NOTIFY_BATCH) {
      const calls = batch.slice(start, start + NOTIFY_BATCH).map(({ channel, payload }) => sql`pg_notify(${channel}, ${payload})`);
      await db.execute(sql`SELECT ${sql.join(calls, sql`, `)}`);
    }
  };
  return (channel, payload = "") => {
    pending.push({ channel, payload });
    flushed ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const batch = pending;
      pending = [];
      flushed = null;
      return flush(batch);
    });
    return flushed;
  };
}

// Several replicas may start at once; a session advisory lock serialises their migrations.
const MIGRATION_LOCK = 7_341_129;

async function migratePostgres(handle: DatabaseHandle, url: string): Promise<void> {
  const lockClient = new pg.Client({ connectionString: url });
  await lockClient.connect();
  try {
    await lockClient.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await migratePg(handle.db as never, { migrationsFolder });
  } finally {
    await lockClient.end().catch(() => {});
  }
}

function assertChannel(channel: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`invalid notify channel name: ${channel}`);
}

/** Raw SQL returning rows; both drivers answer `execute` with `{ rows }`. */
export async function queryRows<T>(executor: Pick<Database, "execute">, query: SQL): Promise<T[]> {
  const result = (await executor.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

/**
 * Prepares a drizzle query (built with `sql.placeholder` for what varies) once, for hot statements:
 * no query building per call, and Postgres parses and plans it once per connection. The statement's
 * name is a digest of its SQL text, so equal texts share it and different texts never clash.
 */
export function prepareQuery<Prepared>(query: { toSQL(): { sql: string }; prepare(name: string): Prepared }): Prepared {
  return query.prepare(`kiln_${createHash("sha1").update(query.toSQL().sql).digest("hex").slice(0, 16)}`);
}
