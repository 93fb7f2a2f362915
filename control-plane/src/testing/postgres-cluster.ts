import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";

/** A throwaway PostgreSQL cluster for tests and benchmarks (initdb + pg_ctl on its own port and socket dir). */
export interface PostgresCluster {
  url: string;
  stop(): void;
}

export function findPostgresBin(): string | null {
  const candidates = [process.env.KILN_PG_BIN].filter(Boolean) as string[];
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    for (const version of readdirSync(root).sort((a, b) => Number(b) - Number(a))) candidates.push(path.join(root, version, "bin"));
  }
  for (const directory of (process.env.PATH ?? "").split(path.delimiter)) candidates.push(directory);
  return candidates.find((directory) => existsSync(path.join(directory, "initdb")) && existsSync(path.join(directory, "pg_ctl"))) ?? null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function startPostgresCluster(bin: string): Promise<PostgresCluster> {
  const directory = mkdtempSync(path.join(os.tmpdir(), "kiln-pg-"));
  const dataDir = path.join(directory, "data");
  const port = await freePort();
  // initdb refuses to run as root; run the cluster as the postgres user then.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const id = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    if (id.status !== 0) throw new Error("running as root but there is no 'postgres' user to own the test cluster");
    const uid = Number(id.stdout.trim());
    const gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());
    chownSync(directory, uid, gid);
  }
  const run = (command: string, args: string[]) => {
    const file = path.join(bin, command);
    const [executable, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
    execFileSync(executable, argv, { stdio: ["ignore", "ignore", "pipe"] });
  };
  run("initdb", ["-D", dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const options = `-p ${port} -k ${directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400`;
  run("pg_ctl", ["-D", dataDir, "-o", options, "-l", path.join(directory, "postgres.log"), "-w", "start"]);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop() {
      try {
        run("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    },
  };
}
