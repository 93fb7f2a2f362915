import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { test as base } from "vitest";
import { createDaemonApp, type DaemonApp } from "../api/app.ts";
import { ProcessManager, type ProcessManagerOptions } from "../processes/index.ts";

export interface Daemon {
  app: DaemonApp;
  processes: ProcessManager;
  /** The daemon's root directory, a fresh temp dir. */
  root: string;
  /** Sends a JSON request and parses the JSON response. */
  call: <Body = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ) => Promise<{ status: number; body: Body }>;
}

export const silentLog = pino({ level: "silent" });

/** How many of this process's descriptors are open on `path` (Linux: /proc/self/fd), once closes in flight have had ~200 ms. */
export async function descriptorsOpenOn(path: string): Promise<number> {
  for (let attempt = 0; ; attempt += 1) {
    const targets = await Promise.all((await readdir("/proc/self/fd")).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")));
    const open = targets.filter((target) => target === path).length;
    if (open === 0 || attempt === 20) return open;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export async function makeTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "kiln-daemon-test-"));
}

export async function startDaemon(root: string, options: Partial<ProcessManagerOptions> = {}): Promise<Daemon> {
  const processes = new ProcessManager({ root, log: silentLog, killGraceMs: 500, ...options });
  const app = createDaemonApp({ root, processes, log: silentLog, info: { version: "0.0.0-test" } });
  const call = async <Body,>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await app.request(path, {
      method,
      headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Body };
  };
  return { app, processes, root, call };
}

/** vitest fixtures: `root` is a temp dir removed after the test; `daemon` serves it and is shut down after. */
export const test = base.extend<{ root: string; daemon: Daemon }>({
  // vitest reads a fixture's dependencies from its first parameter's pattern; this one has none.
  root: async ({}, use) => {
    const root = await makeTempDir();
    await use(root);
    await rm(root, { recursive: true, force: true });
  },
  daemon: async ({ root }, use) => {
    const daemon = await startDaemon(root);
    await use(daemon);
    await daemon.processes.shutdown();
  },
});

/**
 * Whether a process still runs. A killed orphan can linger as a zombie when
 * PID 1 does not reap (as in some containers); that counts as dead.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
