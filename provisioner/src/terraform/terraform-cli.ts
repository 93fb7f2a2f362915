import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Where the terraform binary and its CLI config (the provider mirror) are. */
export interface TerraformToolchain {
  terraformPath: string;
  /** TF_CLI_CONFIG_FILE: how providers are installed (Kiln's: a filesystem mirror only). */
  cliConfigFile: string | null;
}

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const toolchainManifest = path.join(repositoryRoot, ".tools", "terraform", "toolchain.json");

/**
 * The toolchain to use: what the operator configured, else the pinned build from provisioner/scripts/toolchain.mjs.
 * Null when neither exists; builds of terraform templates then fail with a message saying how to fix it.
 */
export function findToolchain(configured: { terraformPath?: string; cliConfigFile?: string } = {}): TerraformToolchain | null {
  if (configured.terraformPath) return { terraformPath: configured.terraformPath, cliConfigFile: configured.cliConfigFile ?? null };
  if (!existsSync(toolchainManifest)) return null;
  const manifest = JSON.parse(readFileSync(toolchainManifest, "utf8")) as { terraform: string; cliConfig: string };
  if (!existsSync(manifest.terraform)) return null;
  return { terraformPath: manifest.terraform, cliConfigFile: configured.cliConfigFile ?? manifest.cliConfig };
}

export interface RunOptions {
  toolchain: TerraformToolchain;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  signal: AbortSignal;
  /** Called with each line of output as it arrives. */
  onLine(stream: "stdout" | "stderr", line: string): void;
  /** After an abort, how long terraform gets to stop cleanly (it saves state) before SIGKILL. */
  interruptGraceMs?: number;
}

/**
 * Runs one terraform command. On abort it sends SIGINT, which makes terraform stop at a safe point and
 * write its state, then SIGKILL if it does not exit within the grace period.
 */
export function runTerraform(options: RunOptions): Promise<{ exitCode: number; aborted: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.toolchain.terraformPath, options.args, {
      cwd: options.cwd,
      env: {
        ...options.env,
        CHECKPOINT_DISABLE: "1",
        TF_IN_AUTOMATION: "1",
        TF_INPUT: "0",
        ...(options.toolchain.cliConfigFile ? { TF_CLI_CONFIG_FILE: options.toolchain.cliConfigFile } : {}),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      aborted = true;
      child.kill("SIGINT");
      killTimer = setTimeout(() => child.kill("SIGKILL"), options.interruptGraceMs ?? 30_000);
    };
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener("abort", onAbort, { once: true });
    for (const stream of ["stdout", "stderr"] as const) {
      let buffer = "";
      child[stream].setEncoding("utf8");
      child[stream].on("data", (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          options.onLine(stream, buffer.slice(0, newline).replace(/\r$/, ""));
          buffer = buffer.slice(newline + 1);
        }
      });
      child[stream].on("end", () => {
        if (buffer) options.onLine(stream, buffer);
        buffer = "";
      });
    }
    child.on("error", (error) => {
      options.signal.removeEventListener("abort", onAbort);
      clearTimeout(killTimer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      options.signal.removeEventListener("abort", onAbort);
      clearTimeout(killTimer);
      resolve({ exitCode: code ?? (signal ? 128 : 1), aborted });
    });
  });
}
