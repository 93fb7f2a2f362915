import type { TestProject } from "vitest/node";
import { findPostgresBin, startPostgresCluster, type PostgresCluster } from "./postgres-cluster.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of a Postgres server tests may create databases on; null means PGlite only. */
    postgresUrl: string | null;
  }
}

let cluster: PostgresCluster | null = null;

export default async function setup(project: TestProject): Promise<() => void> {
  const strict = process.env.KILN_STRICT === "1";
  let url = process.env.KILN_TEST_POSTGRES_URL ?? null;
  if (!url) {
    const bin = findPostgresBin();
    if (bin) {
      cluster = await startPostgresCluster(bin);
      url = cluster.url;
    } else if (strict) {
      throw new Error("strict mode: PostgreSQL (initdb, pg_ctl) not found; install it or set KILN_TEST_POSTGRES_URL");
    } else {
      console.warn("\n!!! PostgreSQL not found: database tests run on embedded PGlite only. Install PostgreSQL or set KILN_TEST_POSTGRES_URL for the full suite. !!!\n");
    }
  }
  project.provide("postgresUrl", url);
  return () => cluster?.stop();
}
