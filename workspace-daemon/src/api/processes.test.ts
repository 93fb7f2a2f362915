import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect } from "vitest";
import type { ListProcessesResponse, ProcessResult, ProcessStreamEvent } from "../protocol.ts";
import { isProcessAlive, startDaemon, test } from "../testing/fixture.ts";

describe("POST /v1/processes (foreground)", () => {
  test("waits for the exit and returns code and combined output", async ({ daemon }) => {
    const { status, body } = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      command: "echo out; echo err >&2; exit 3",
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      command: "echo out; echo err >&2; exit 3",
      running: false,
      exit_code: 3,
      signal: null,
      output: "out\nerr\n",
      truncated: false,
      omitted_bytes: 0,
      timed_out: false,
    });
    expect(body.wall_duration_ms).toBeGreaterThanOrEqual(0);
    expect(Date.now() - Date.parse(body.started_at)).toBeLessThan(60_000);
  });

  test("runs in the workdir, relative to the root", async ({ daemon, root }) => {
    await daemon.call("POST", "/v1/processes", { command: "mkdir sub" });
    const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "pwd", workdir: "sub" });
    expect(body.output).toBe(`${join(root, "sub")}\n`);
  });

  test("kills the whole process group on timeout", async ({ daemon, root }) => {
    const pidFile = join(root, "child.pid");
    const started = Date.now();
    const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      // The grandchild ignores nothing but is not the shell: only a group kill reaches it.
      command: `sleep 30 & echo $! > ${pidFile}; echo waiting; wait`,
      timeout_ms: 300,
    });
    expect(body).toMatchObject({ running: false, timed_out: true, exit_code: null, signal: "SIGTERM", output: "waiting\n" });
    expect(Date.now() - started).toBeLessThan(5000);
    const grandchild = Number(await readFile(pidFile, "utf8"));
    await expect.poll(() => isProcessAlive(grandchild)).toBe(false);
  });

  test("escalates to SIGKILL when SIGTERM is ignored", async ({ daemon }) => {
    const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      command: "trap '' TERM; echo ready; while true; do sleep 0.05; done",
      timeout_ms: 300,
    });
    expect(body).toMatchObject({ running: false, timed_out: true, signal: "SIGKILL" });
  });

  test("gives children a non-interactive environment without the agent token", async ({ root }) => {
    const daemon = await startDaemon(root, {
      env: { PATH: process.env.PATH, HOME: "/home/test", KILN_AGENT_TOKEN: "secret-1", KILN_TUNNEL_TOKEN_FILE: "secret-2", KILN_URL: "https://cp" },
    });
    try {
      const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "env", env: { EXTRA: "yes", PAGER: "less" } });
      const environment = Object.fromEntries(body.output.trim().split("\n").map((line) => line.split(/=(.*)/s).slice(0, 2)));
      expect(environment).toMatchObject({
        HOME: "/home/test",
        KILN_URL: "https://cp",
        GIT_TERMINAL_PROMPT: "0",
        GIT_PAGER: "cat",
        TERM: "dumb",
        KILN_AGENT: "1",
        EXTRA: "yes",
        PAGER: "less", // the request's own env wins
      });
      expect(environment).not.toHaveProperty("KILN_AGENT_TOKEN");
      expect(environment).not.toHaveProperty("KILN_TUNNEL_TOKEN_FILE");

      const defaults = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "echo $PAGER" });
      expect(defaults.body.output).toBe("cat\n");
    } finally {
      await daemon.processes.shutdown();
    }
  });

  test("reads stdin as /dev/null", async ({ daemon }) => {
    const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "cat; echo done", timeout_ms: 2000 });
    expect(body).toMatchObject({ output: "done\n", exit_code: 0, timed_out: false });
  });

  test("keeps the head and tail of long output and reports what it omitted", async ({ daemon }) => {
    // 100 000 lines of "line NNNNN" (11 bytes each with the newline) = 1 100 000 bytes
    const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      command: "seq -f 'line %05g' 0 99999",
    });
    expect(body.exit_code).toBe(0);
    expect(body.truncated).toBe(true);
    expect(body.omitted_bytes).toBe(1_100_000 - 32 * 1024);
    expect(body.output.startsWith("line 00000\nline 00001\n")).toBe(true);
    expect(body.output.endsWith("line 99998\nline 99999\n")).toBe(true);
    expect(body.output).toContain(`\n… [${body.omitted_bytes} bytes omitted] …\n`);
  });

  test("cuts output lines at 2048 bytes", async ({ daemon }) => {
    const { body } = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      command: "head -c 5000 /dev/zero | tr '\\0' a; echo; echo next",
    });
    expect(body.output).toBe(`${"a".repeat(2048)}… [2952 bytes cut]\nnext\n`);
    expect(body.truncated).toBe(true);
    expect(body.omitted_bytes).toBe(0);
  });

  test("rejects a missing workdir and a bad body", async ({ daemon }) => {
    const badWorkdir = await daemon.call("POST", "/v1/processes", { command: "true", workdir: "does/not/exist" });
    expect(badWorkdir.status).toBe(400);
    expect(badWorkdir.body).toMatchObject({ error: { code: "invalid_workdir" } });

    const badBody = await daemon.call("POST", "/v1/processes", { command: "", timeout_ms: 5 * 60 * 60 * 1000 });
    expect(badBody.status).toBe(400);
    const issues = (badBody.body as { error: { details: { issues: { path: string }[] } } }).error.details.issues;
    expect(issues.map((issue) => issue.path).sort()).toEqual(["command", "timeout_ms"]);

    const badEnv = await daemon.call("POST", "/v1/processes", { command: "true", env: { "A=B": "x", OK: "a\u0000b" } });
    expect(badEnv.status).toBe(400);
    expect(badEnv.body).toMatchObject({ error: { code: "invalid_request" } });
  });
});

describe("background processes", () => {
  test("start returns at once; output waits for the exit", async ({ daemon }) => {
    const started = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      command: "echo begin; sleep 0.5; echo end",
      background: true,
    });
    expect(started.body).toMatchObject({ running: true, exit_code: null });

    const early = await daemon.call<ProcessResult>("GET", `/v1/processes/${started.body.process_id}/output`);
    expect(early.body.running).toBe(true);

    const waited = await daemon.call<ProcessResult>("GET", `/v1/processes/${started.body.process_id}/output?wait_ms=10000`);
    expect(waited.body).toMatchObject({ running: false, exit_code: 0, output: "begin\nend\n" });
  });

  test("output wait returns when wait_ms passes while the process runs on", async ({ daemon }) => {
    const started = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "sleep 30", background: true });
    const before = Date.now();
    const waited = await daemon.call<ProcessResult>("GET", `/v1/processes/${started.body.process_id}/output?wait_ms=200`);
    expect(waited.body.running).toBe(true);
    expect(Date.now() - before).toBeGreaterThanOrEqual(190);
  });

  test("background processes have no default timeout", async ({ daemon }) => {
    const started = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "sleep 0.3; echo ok", background: true });
    const waited = await daemon.call<ProcessResult>("GET", `/v1/processes/${started.body.process_id}/output?wait_ms=5000`);
    expect(waited.body).toMatchObject({ exit_code: 0, timed_out: false, output: "ok\n" });
  });

  test("lists the chat's processes without output", async ({ daemon }) => {
    const first = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "true" });
    const second = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "sleep 30", background: true });
    await daemon.call("POST", "/v1/processes", { command: "true" }, { "x-kiln-chat-id": "other" });
    const { body } = await daemon.call<ListProcessesResponse>("GET", "/v1/processes");
    expect(body.processes.map((entry) => [entry.process_id, entry.running])).toEqual([
      [first.body.process_id, false],
      [second.body.process_id, true],
    ]);
    expect(body.processes[0]).not.toHaveProperty("output");
  });

  test("signal terminate and kill end the process", async ({ daemon }) => {
    const terminated = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "sleep 30", background: true });
    const afterTerminate = await daemon.call<ProcessResult>("POST", `/v1/processes/${terminated.body.process_id}/signal`, { signal: "terminate" });
    expect(afterTerminate.body).toMatchObject({ running: false, signal: "SIGTERM" });

    const killed = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "trap '' TERM; sleep 30", background: true });
    const afterKill = await daemon.call<ProcessResult>("POST", `/v1/processes/${killed.body.process_id}/signal`, { signal: "kill" });
    expect(afterKill.body).toMatchObject({ running: false, signal: "SIGKILL" });
  });

  test("rejects an unknown signal with 400 and an unknown process with 404", async ({ daemon }) => {
    const started = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "sleep 30", background: true });
    const badSignal = await daemon.call("POST", `/v1/processes/${started.body.process_id}/signal`, { signal: "SIGHUP" });
    expect(badSignal.status).toBe(400);
    expect(badSignal.body).toMatchObject({ error: { code: "invalid_signal", details: { allowed: ["terminate", "kill"] } } });

    const unknownOutput = await daemon.call("GET", "/v1/processes/no-such-id/output");
    expect(unknownOutput.status).toBe(404);
    expect(unknownOutput.body).toMatchObject({ error: { code: "process_not_found" } });
    const unknownSignal = await daemon.call("POST", "/v1/processes/no-such-id/signal", { signal: "kill" });
    expect(unknownSignal.status).toBe(404);
  });

  test("another chat's process is not found", async ({ daemon }) => {
    const mine = { "x-kiln-chat-id": "chat-a" };
    const started = await daemon.call<ProcessResult>("POST", "/v1/processes", { command: "sleep 30", background: true }, mine);
    const id = started.body.process_id;
    expect((await daemon.call("GET", `/v1/processes/${id}/output`, undefined, mine)).status).toBe(200);

    const others: Record<string, string>[] = [{ "x-kiln-chat-id": "chat-b" }, {}];
    for (const headers of others) {
      const output = await daemon.call("GET", `/v1/processes/${id}/output`, undefined, headers);
      expect(output.status).toBe(404);
      expect(output.body).toMatchObject({ error: { code: "process_not_found" } });
      const signal = await daemon.call("POST", `/v1/processes/${id}/signal`, { signal: "kill" }, headers);
      expect(signal.status).toBe(404);
      const list = await daemon.call<ListProcessesResponse>("GET", "/v1/processes", undefined, headers);
      expect(list.body.processes).toEqual([]);
    }
    expect((await daemon.call<ProcessResult>("GET", `/v1/processes/${id}/output`, undefined, mine)).body.running).toBe(true);
  });
});

describe("client_token", () => {
  test("a retried foreground start runs the command once", async ({ daemon, root }) => {
    const request = { command: `echo run >> ${join(root, "runs.log")}; sleep 0.2; echo done`, client_token: "tok-1" };
    const [first, second] = await Promise.all([
      daemon.call<ProcessResult>("POST", "/v1/processes", request),
      daemon.call<ProcessResult>("POST", "/v1/processes", request),
    ]);
    const third = await daemon.call<ProcessResult>("POST", "/v1/processes", request);
    expect(await readFile(join(root, "runs.log"), "utf8")).toBe("run\n");
    expect(second.body.process_id).toBe(first.body.process_id);
    expect(third.body.process_id).toBe(first.body.process_id);
    for (const result of [first, second, third]) expect(result.body).toMatchObject({ running: false, exit_code: 0, output: "done\n" });
  });

  test("tokens are per chat, and a token reused for another command conflicts", async ({ daemon, root }) => {
    const command = `echo run >> ${join(root, "runs.log")}`;
    await daemon.call("POST", "/v1/processes", { command, client_token: "t" }, { "x-kiln-chat-id": "a" });
    await daemon.call("POST", "/v1/processes", { command, client_token: "t" }, { "x-kiln-chat-id": "b" });
    expect(await readFile(join(root, "runs.log"), "utf8")).toBe("run\nrun\n");

    const conflict = await daemon.call("POST", "/v1/processes", { command: "true", client_token: "t" }, { "x-kiln-chat-id": "a" });
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ error: { code: "client_token_conflict" } });
  });
});

async function readEvents(response: Response, onEvent: (event: ProcessStreamEvent, receivedAt: number) => void): Promise<void> {
  const reader = (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    pending += value;
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      onEvent(JSON.parse(pending.slice(0, newline)) as ProcessStreamEvent, Date.now());
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
}

describe("POST /v1/processes/stream", () => {
  test("streams output live, before the process exits", async ({ daemon }) => {
    const response = await daemon.app.request("/v1/processes/stream", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "echo first; sleep 1; echo second >&2; exit 4" }),
    });
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    const events: { event: ProcessStreamEvent; receivedAt: number }[] = [];
    await readEvents(response, (event, receivedAt) => events.push({ event, receivedAt }));

    expect(events.map(({ event }) => event.type)).toEqual(["started", "output", "output", "exit"]);
    const [started, first, second, exit] = events.map(({ event }) => event);
    expect(started).toMatchObject({ type: "started", attached: false });
    expect(first).toEqual({ type: "output", stream: "stdout", data: Buffer.from("first\n").toString("base64") });
    expect(second).toEqual({ type: "output", stream: "stderr", data: Buffer.from("second\n").toString("base64") });
    expect(exit).toEqual({ type: "exit", exit_code: 4, signal: null, timed_out: false });
    const firstChunkLead = (events[3]?.receivedAt ?? 0) - (events[1]?.receivedAt ?? 0);
    expect(firstChunkLead).toBeGreaterThanOrEqual(800);
  });

  test("cancelling the response kills the process group", async ({ daemon, root }) => {
    const pidFile = join(root, "pid");
    const response = await daemon.app.request("/v1/processes/stream", {
      method: "POST",
      headers: { "content-type": "application/json", "x-kiln-chat-id": "c" },
      body: JSON.stringify({ command: `sleep 30 & echo $! > ${pidFile}; echo up; wait` }),
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes('"output"')) text += new TextDecoder().decode((await reader.read()).value);
    const processId = (JSON.parse(text.split("\n")[0] ?? "") as { process_id: string }).process_id;
    await reader.cancel();

    const grandchild = Number(await readFile(pidFile, "utf8"));
    await expect.poll(() => isProcessAlive(grandchild)).toBe(false);
    const result = await daemon.call<ProcessResult>("GET", `/v1/processes/${processId}/output?wait_ms=5000`, undefined, { "x-kiln-chat-id": "c" });
    expect(result.body).toMatchObject({ running: false, signal: "SIGKILL" });
  });

  test("rejects a bad body before starting anything", async ({ daemon }) => {
    const response = await daemon.app.request("/v1/processes/stream", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: 42 }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "command" }] } } });
  });
});

describe("ProcessManager.shutdown", () => {
  test("kills every running process group", async ({ root }) => {
    const daemon = await startDaemon(root);
    const pidFile = join(root, "pid");
    const started = await daemon.call<ProcessResult>("POST", "/v1/processes", {
      command: `trap '' TERM; sleep 30 & echo $! > ${pidFile}; wait`,
      background: true,
    });
    await expect.poll(() => readFile(pidFile, "utf8").catch(() => "")).not.toBe("");
    await daemon.processes.shutdown();
    const result = await daemon.call<ProcessResult>("GET", `/v1/processes/${started.body.process_id}/output`);
    expect(result.body.running).toBe(false);
    const grandchild = Number(await readFile(pidFile, "utf8"));
    await expect.poll(() => isProcessAlive(grandchild)).toBe(false);
  });
});
