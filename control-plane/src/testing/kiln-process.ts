import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./postgres-cluster.ts";

export const kilnBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/kiln.mjs");

export interface KilnServerProcess {
  url: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  output(): string;
  /** Stops the server (SIGTERM by default; SIGKILL to simulate a crash). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A real `kiln server` process on loopback. */
export async function startKilnServer(options: { postgresUrl?: string | null; dataDir?: string; port?: number; env?: Record<string, string> } = {}): Promise<KilnServerProcess> {
  const port = options.port ?? (await freePort());
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "kiln-server-"));
  const args = [kilnBin, "server", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir];
  if (options.postgresUrl) args.push("--postgres-url", options.postgresUrl);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, KILN_LOG_LEVEL: "info", ...options.env } });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (true) {
    if (child.exitCode !== null) throw new Error(`kiln server exited with ${child.exitCode}:\n${output}`);
    const healthy = await fetch(`${url}/healthz`).then((response) => response.ok, () => false);
    if (healthy) break;
    if (Date.now() > deadline) throw new Error(`kiln server did not become healthy:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url, port, dataDir, child,
    output: () => output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill(signal);
      await exited;
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `kiln` CLI with its own config dir. */
export function kiln(args: string[], options: { configDir: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, KILN_CONFIG_DIR: options.configDir, ...options.env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`kiln ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

/** Kills every kiln-daemon whose environment points at `url`, with its children (cleanup after a test). */
export function killDaemonsOf(url: string): number {
  let killed = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environment = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
      if (environment.includes(`KILN_URL=${url}`)) {
        // The whole group when the daemon leads one (the local provisioner starts it detached): its tailscaled too.
        try {
          process.kill(-Number(entry), "SIGKILL");
        } catch {
          process.kill(Number(entry), "SIGKILL");
        }
        killed++;
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return killed;
}

/** The environment of a running process, e.g. to recover a daemon's agent token in a test. */
export function processEnvironment(pid: number): Record<string, string> {
  return Object.fromEntries(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean).map((pair) => {
    const index = pair.indexOf("=");
    return [pair.slice(0, index), pair.slice(index + 1)];
  }));
}

export function temporaryDirectory(prefix: string): { path: string; remove(): void } {
  const directory = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { path: directory, remove: () => rmSync(directory, { recursive: true, force: true }) };
}
