import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { openDatabase, type DatabaseHandle } from "../db/index.ts";

export interface TestDatabase extends DatabaseHandle {
  /** Connection URL when backed by Postgres (for child processes such as a real `kiln server`). */
  readonly url: string | null;
}

/** A fresh, migrated database: its own Postgres database on the test cluster, or in-memory PGlite. */
export async function createTestDatabase(options: { kind?: "postgres" | "pglite" } = {}): Promise<TestDatabase> {
  const serverUrl = inject("postgresUrl");
  if (options.kind === "pglite" || !serverUrl) {
    const handle = await openDatabase({ pgliteDir: null });
    return { ...handle, url: null };
  }
  const name = `kiln_test_${randomBytes(6).toString("hex")}`;
  await withAdmin(serverUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ postgresUrl: url.toString() });
  return {
    ...handle,
    url: url.toString(),
    async close() {
      await handle.close();
      await withAdmin(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

async function withAdmin(url: string, run: (client: pg.Client) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await run(client);
  } finally {
    await client.end();
  }
}
