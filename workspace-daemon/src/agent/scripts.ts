import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { AgentScript, AgentScriptRun } from "./protocol.ts";

export interface ScriptOutput {
  (entry: { source: string; level: "info" | "error"; output: string }): void;
}

export interface RunScriptOptions {
  script: AgentScript;
  stage: AgentScriptRun["stage"];
  cwd: string;
  env: NodeJS.ProcessEnv;
  output: ScriptOutput;
  /** Where relative `log_path`s and default script logs go. */
  logDirectory?: string;
  /** Stops the script early (daemon shutdown). */
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL when the script times out or is stopped. */
  killGraceMs?: number;
}

/**
 * Runs one script with `sh -c` in its own process group, line by line into `output` (and its log file),
 * and reports how it ended. Never throws: a script that cannot start is a `start_failure`.
 */
export function runScript(options: RunScriptOptions): Promise<AgentScriptRun> {
  const { script } = options;
  const startedAt = new Date();
  const finish = (status: AgentScriptRun["status"], exitCode: number | null): AgentScriptRun => ({
    script: script.display_name, stage: options.stage, status, exit_code: exitCode, started_at: startedAt.toISOString(), ended_at: new Date().toISOString(),
  });
  return new Promise((resolve) => {
    let file: WriteStream | null = null;
    const logDirectory = options.logDirectory ?? os.tmpdir();
    const logPath = script.log_path ? path.resolve(logDirectory, script.log_path) : path.join(logDirectory, `kiln-script-${script.display_name.replace(/[^A-Za-z0-9_.-]+/g, "_")}.log`);
    try {
      mkdirSync(path.dirname(logPath), { recursive: true });
      file = createWriteStream(logPath, { flags: "a" });
      file.on("error", () => (file = null));
    } catch {
      file = null;
    }
    let child;
    try {
      child = spawn("/bin/sh", ["-c", script.script], { cwd: options.cwd, env: options.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    } catch (error) {
      options.output({ source: script.display_name, level: "error", output: `could not start: ${(error as Error).message}` });
      file?.end();
      resolve(finish("start_failure", null));
      return;
    }
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (reason: "timeout" | "abort") => {
      if (reason === "timeout") timedOut = true;
      signalGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), options.killGraceMs ?? 3_000);
    };
    const timeoutTimer = script.timeout_seconds > 0 ? setTimeout(() => stop("timeout"), script.timeout_seconds * 1000) : undefined;
    const onAbort = () => stop("abort");
    options.signal?.addEventListener("abort", onAbort, { once: true });
    for (const stream of ["stdout", "stderr"] as const) {
      let buffer = "";
      const emit = (line: string) => {
        file?.write(`${line}\n`);
        options.output({ source: script.display_name, level: stream === "stderr" ? "error" : "info", output: line });
      };
      child[stream].setEncoding("utf8");
      child[stream].on("data", (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          emit(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
        }
        // A line without an end that grows without bound is cut.
        if (buffer.length > 16 * 1024) {
          emit(buffer);
          buffer = "";
        }
      });
      child[stream].on("end", () => {
        if (buffer) emit(buffer);
      });
    }
    child.on("error", (error) => {
      options.output({ source: script.display_name, level: "error", output: `could not start: ${error.message}` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener("abort", onAbort);
      let result: AgentScriptRun;
      if (timedOut) {
        options.output({ source: script.display_name, level: "error", output: `timed out after ${script.timeout_seconds} s` });
        result = finish("timed_out", code);
      } else if (code === null && child.pid === undefined) {
        result = finish("start_failure", null);
      } else {
        result = finish(code === 0 ? "ok" : "exit_failure", code ?? (signal ? 128 : 1));
      }
      // The log file is complete when the run is reported.
      if (file) file.end(() => resolve(result));
      else resolve(result);
    });
  });
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
