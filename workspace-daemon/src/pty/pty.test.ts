import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { outputOf, startInteractiveDaemon, type InteractiveDaemon } from "../testing/interactive-daemon.ts";
import { Coalescer } from "./coalescer.ts";
import { Scrollback } from "./scrollback.ts";

describe("Scrollback", () => {
  test("keeps the last capacity bytes across chunk boundaries", () => {
    const scrollback = new Scrollback(10);
    scrollback.push(Buffer.from("abcdef"));
    scrollback.push(Buffer.from("ghijkl"));
    expect(scrollback.snapshot().toString()).toBe("cdefghijkl");
    scrollback.push(Buffer.from("0123456789XYZ"));
    expect(scrollback.snapshot().toString()).toBe("3456789XYZ");
    expect(scrollback.bytes).toBe(10);
  });
});

describe("Coalescer", () => {
  test("joins the chunks of one loop turn and sends at once past the limit", async () => {
    const delivered: string[] = [];
    const coalescer = new Coalescer((chunk) => delivered.push(chunk.toString()), 8);
    coalescer.push(Buffer.from("ab"));
    coalescer.push(Buffer.from("cd"));
    expect(delivered).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(delivered).toEqual(["abcd"]);
    coalescer.push(Buffer.from("12345"));
    coalescer.push(Buffer.from("6789"));
    expect(delivered).toEqual(["abcd", "123456789"]);
    coalescer.flush();
    expect(delivered).toHaveLength(2);
  });
});

describe("PTY sessions and byte streams behind node:http2", () => {
  let root: string;
  let daemon: InteractiveDaemon;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-pty-"));
    daemon = await startInteractiveDaemon(root, join(root, ".kiln"), { scrollbackBytes: 64 * 1024 });
  });
  afterEach(async () => {
    await daemon.close();
    await rm(root, { recursive: true, force: true });
  });

  test("a session takes input, replays scrollback on reattach, serves several viewers, resizes, and ends with its shell", async () => {
    const created = await daemon.call("POST", "/v1/pty", { cols: 100, rows: 30, command: "exec sh" });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    const first = await daemon.open(`/v1/pty/${id}/attach`);
    expect(first.status).toBe(200);
    const firstOutput = outputOf(first.stream);
    first.stream.write("echo marker-$((6*7))\n");
    await firstOutput.waitFor("marker-42");

    // Leaving does not end the session.
    first.stream.close();
    await new Promise((resolve) => first.stream.once("close", resolve));
    expect((await daemon.call("GET", `/v1/pty/${id}`)).body).toMatchObject({ running: true });

    const second = await daemon.open(`/v1/pty/${id}/attach`);
    const third = await daemon.open(`/v1/pty/${id}/attach`);
    const secondOutput = outputOf(second.stream);
    const thirdOutput = outputOf(third.stream);
    await secondOutput.waitFor("marker-42");
    await thirdOutput.waitFor("marker-42");
    expect((await daemon.call("GET", "/v1/pty")).body.sessions).toEqual([expect.objectContaining({ id, viewers: 2 })]);

    expect((await daemon.call("POST", `/v1/pty/${id}/resize`, { cols: 123, rows: 45 })).status).toBe(200);
    second.stream.write("stty size\n");
    await secondOutput.waitFor("45 123");
    await thirdOutput.waitFor("45 123");

    third.stream.write("exit 7\n");
    await Promise.all([new Promise((resolve) => second.stream.once("end", resolve)), new Promise((resolve) => third.stream.once("end", resolve))]);
    const ended = await daemon.call("GET", `/v1/pty/${id}`);
    expect(ended.body).toMatchObject({ running: false, exit_code: 7 });
  });

  test("scrollback is capped", async () => {
    const created = await daemon.call("POST", "/v1/pty", { command: "head -c 300000 /dev/zero | tr '\\0' x; echo; echo done-flooding; sleep 30" });
    const id = created.body.id as string;
    const deadline = Date.now() + 10_000;
    while ((await daemon.call("GET", `/v1/pty/${id}`)).body.scrollback_bytes < 64 * 1024 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const attach = await daemon.open(`/v1/pty/${id}/attach`);
    const output = outputOf(attach.stream);
    await output.waitFor("done-flooding");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Buffer.byteLength(output.text())).toBeLessThanOrEqual(64 * 1024);
    expect(Buffer.byteLength(output.text())).toBeGreaterThan(60 * 1024);
    expect((await daemon.call("DELETE", `/v1/pty/${id}`)).status).toBe(200);
    expect((await daemon.call("GET", `/v1/pty/${id}`)).status).toBe(404);
  });

  test("unknown sessions and bad sizes are refused", async () => {
    const missing = await daemon.open("/v1/pty/nope/attach");
    expect(missing.status).toBe(404);
    expect((await daemon.call("POST", "/v1/pty", { cols: 0 })).body).toMatchObject({ error: { code: "invalid_request" } });
    expect((await daemon.call("POST", "/v1/pty/nope/resize", { cols: 10, rows: 10 })).status).toBe(404);
  });

  test("a TCP stream reaches a loopback server in the workspace, and a closed port is refused", async () => {
    const server = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const opened = await daemon.open(`/v1/tcp?port=${port}`);
    expect(opened.status).toBe(200);
    const output = outputOf(opened.stream);
    opened.stream.write("ping over tcp");
    await output.waitFor("ping over tcp");
    opened.stream.close();
    server.close();

    const refused = await daemon.open(`/v1/tcp?port=${port}`);
    expect(refused.status).toBe(502);
    const bad = await daemon.open("/v1/tcp?port=70000");
    expect(bad.status).toBe(400);
  });
});
