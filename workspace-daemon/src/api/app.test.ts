import { symlink, writeFile } from "node:fs/promises";
import { hostname, homedir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect } from "vitest";
import { ProcessManager } from "../processes/index.ts";
import { InfoResponse } from "../protocol.ts";
import { silentLog, test } from "../testing/fixture.ts";
import { createDaemonApp } from "./app.ts";

describe("daemon app", () => {
  test("GET /v1/info describes the machine and the daemon", async ({ daemon, root }) => {
    const { status, body } = await daemon.call("GET", "/v1/info");
    expect(status).toBe(200);
    expect(InfoResponse.parse(body)).toEqual({
      version: "0.0.0-test",
      os: process.platform,
      arch: process.arch,
      hostname: hostname(),
      home: homedir(),
      workdir: root,
      pid: process.pid,
      uptime_ms: expect.any(Number),
    });
  });

  test("echoes or assigns a request id", async ({ daemon }) => {
    const given = await daemon.app.request("/v1/info", { headers: { "x-request-id": "req-123" } });
    expect(given.headers.get("x-request-id")).toBe("req-123");
    const assigned = await daemon.app.request("/v1/info");
    expect(assigned.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("every kind of response carries the request id", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "a");
    const raw = await daemon.app.request("/v1/files/raw?path=a.txt", { headers: { "x-request-id": "req-raw" } });
    expect(raw.headers.get("x-request-id")).toBe("req-raw");
    expect(await raw.text()).toBe("a");
    const failed = await daemon.app.request("/v1/files/read?path=missing.txt", { headers: { "x-request-id": "req-failed" } });
    expect(failed.status).toBe(404);
    expect(failed.headers.get("x-request-id")).toBe("req-failed");
    const unknown = await daemon.app.request("/v1/nope", { headers: { "x-request-id": "req-404" } });
    expect(unknown.headers.get("x-request-id")).toBe("req-404");
  });

  test("unknown routes get a structured 404", async ({ daemon }) => {
    const { status, body } = await daemon.call("GET", "/v1/nope");
    expect(status).toBe(404);
    expect(body).toEqual({ error: { code: "route_not_found", message: "no route for GET /v1/nope" } });
  });

  test("unexpected errors are a generic 500, with the stack only in the log", async ({ root }) => {
    const logLines: string[] = [];
    const log = pino(
      { level: "error" },
      new Writable({
        write(chunk, _encoding, done) {
          logLines.push(String(chunk));
          done();
        },
      }),
    );
    const processes = new ProcessManager({ root, log: silentLog });
    const app = createDaemonApp({ root, processes, log, info: { version: "test" } });
    // A symlink loop fails with ELOOP, which the daemon has no meaning for.
    await symlink("loop-b", join(root, "loop-a"));
    await symlink("loop-a", join(root, "loop-b"));

    const response = await app.request("/v1/files/read?path=loop-a");
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: { code: "internal_error", message: "internal error" } });
    const entry = JSON.parse(logLines.join("")) as { msg: string; err: { code: string; stack: string }; requestId: string };
    expect(entry).toMatchObject({ msg: "request crashed", err: { code: "ELOOP" } });
    expect(entry.err.stack).toContain("ELOOP");
    expect(entry.requestId).toBe(response.headers.get("x-request-id"));
  });
});
