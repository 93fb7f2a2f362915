import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { AgentScript } from "./protocol.ts";
import { runScript } from "./scripts.ts";

describe("agent scripts", () => {
  const directory = mkdtempSync(path.join(os.tmpdir(), "kiln-scripts-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));
  const script = (fields: Partial<AgentScript>): AgentScript => ({
    display_name: "test", script: "true", run_on_start: true, run_on_stop: false, start_blocks_login: true, timeout_seconds: 0, cron: "", log_path: "", ...fields,
  });

  it("streams output line by line, writes the log file, and reports the exit", async () => {
    const lines: string[] = [];
    const run = await runScript({
      script: script({ script: "echo one; echo two >&2; printf three; exit 4", log_path: "logs/test.log" }), stage: "start", cwd: directory, env: process.env,
      logDirectory: directory, output: (entry) => lines.push(`${entry.level}:${entry.output}`),
    });
    expect(run).toMatchObject({ script: "test", stage: "start", status: "exit_failure", exit_code: 4 });
    expect(lines.sort()).toEqual(["error:two", "info:one", "info:three"]);
    expect(readFileSync(path.join(directory, "logs/test.log"), "utf8").split("\n").sort()).toEqual(["", "one", "three", "two"]);
  });

  it("kills a script and its children when it runs past its timeout", async () => {
    const started = Date.now();
    const run = await runScript({ script: script({ script: "sleep 30 & sleep 30", timeout_seconds: 1 }), stage: "start", cwd: directory, env: process.env, logDirectory: directory, output: () => {} });
    expect(run.status).toBe("timed_out");
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
