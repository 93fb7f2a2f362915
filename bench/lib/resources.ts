import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface Resource {
  name: string;
  /** Orderly release. */
  release(): Promise<void> | void;
  /** Last resort from the process "exit" handler, where nothing asynchronous runs. */
  releaseNow(): void;
}

/**
 * Everything a benchmark starts (child processes, servers, temp dirs), released in
 * reverse order on success, on error and on SIGINT/SIGTERM.
 */
export class Resources {
  readonly #resources: Resource[] = [];
  #released = false;

  constructor() {
    process.once("exit", () => {
      for (const resource of this.#resources.reverse()) {
        try {
          resource.releaseNow();
        } catch {
          // Best effort: the process is exiting anyway.
        }
      }
    });
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.once(signal, () => {
        process.stderr.write(`\n${signal}: cleaning up\n`);
        void this.release().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
      });
    }
  }

  temporaryDirectory(prefix: string): string {
    const path = mkdtempSync(join(tmpdir(), prefix));
    const remove = () => rmSync(path, { recursive: true, force: true });
    this.#resources.push({ name: `directory ${path}`, release: remove, releaseNow: remove });
    return path;
  }

  /** Stops `child` with SIGTERM, and SIGKILL if it has not exited after `graceMs`. */
  child(name: string, child: ChildProcess, graceMs = 5000): ChildProcess {
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    };
    this.#resources.push({ name, release: () => stopChild(child, graceMs), releaseNow: kill });
    return child;
  }

  defer(name: string, release: () => Promise<void> | void): void {
    this.#resources.push({ name, release, releaseNow: () => {} });
  }

  /** True once release has begun, e.g. on a signal: failures after that are the teardown's doing. */
  get releasing(): boolean {
    return this.#released;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    while (this.#resources.length > 0) {
      const resource = this.#resources.pop() as Resource;
      try {
        await resource.release();
      } catch (error) {
        process.stderr.write(`cleanup of ${resource.name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
        resource.releaseNow();
      }
    }
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * A benchmark's entry point: runs `main` with fresh `Resources` and releases them however it ends.
 * The exit status is 1 if it threw, or with `strict` if a target failed. An error raised because a
 * signal is already releasing everything is not reported again.
 */
export async function runBenchmark(name: string, strict: boolean, main: (resources: Resources) => Promise<boolean>): Promise<void> {
  const resources = new Resources();
  try {
    const allPass = await main(resources);
    if (strict && !allPass) process.exitCode = 1;
  } catch (error) {
    if (!resources.releasing) {
      process.stderr.write(`${name} benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    process.exitCode = 1;
  } finally {
    await resources.release();
  }
}
