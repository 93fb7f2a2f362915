// The control plane reaches the daemon over HTTP/2 through the tunnel; this checks
// that the transport-agnostic app works behind node:http2 via @hono/node-server.
import { readFile, writeFile } from "node:fs/promises";
import { connect, createServer, type ClientHttp2Session, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { getRequestListener } from "@hono/node-server";
import { describe, expect } from "vitest";
import type { ProcessStreamEvent } from "../protocol.ts";
import { isProcessAlive, test as base } from "../testing/fixture.ts";

const test = base.extend<{ client: ClientHttp2Session }>({
  client: async ({ daemon }, use) => {
    const server: Http2Server = createServer(getRequestListener(daemon.app.fetch));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await use(client);
    client.close();
    await new Promise((resolve) => server.close(resolve));
  },
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(client: ClientHttp2Session, method: string, path: string, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const stream = client.request({ ":method": method, ":path": path, "content-type": "application/json" });
    const chunks: Buffer[] = [];
    let headers: Reply["headers"] = {};
    stream.on("response", (received) => {
      headers = received;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ status: Number(headers[":status"]), headers, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

describe("the app behind node:http2", () => {
  test("serves JSON, errors and raw bytes", async ({ client, root }) => {
    const info = await send(client, "GET", "/v1/info");
    expect(info.status).toBe(200);
    expect(JSON.parse(info.body.toString())).toMatchObject({ version: "0.0.0-test", pid: process.pid });

    const written = await send(client, "POST", "/v1/files/write", JSON.stringify({ path: "h2.txt", content: "over http/2\n" }));
    expect(JSON.parse(written.body.toString())).toMatchObject({ created: true, bytes_written: 12 });

    const missing = await send(client, "GET", "/v1/files/read?path=missing");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body.toString())).toMatchObject({ error: { code: "not_found" } });

    const blob = Buffer.alloc(3 * 1024 * 1024, 7);
    await writeFile(join(root, "blob"), blob);
    const raw = await send(client, "GET", "/v1/files/raw?path=blob");
    expect(raw.headers["content-length"]).toBe(String(blob.length));
    expect(raw.body.equals(blob)).toBe(true);

    const uploaded = await send(client, "PUT", "/v1/files/raw?path=up.bin", blob);
    expect(JSON.parse(uploaded.body.toString())).toMatchObject({ bytes_written: blob.length });
    expect((await readFile(join(root, "up.bin"))).equals(blob)).toBe(true);
  });

  test("streams process events live and kills the process when the client resets the stream", async ({ client, root }) => {
    const stream = client.request({ ":method": "POST", ":path": "/v1/processes/stream", "content-type": "application/json" });
    stream.end(JSON.stringify({ command: `echo $$ > ${join(root, "pid")}; echo first; sleep 30; echo never` }));

    const events: ProcessStreamEvent[] = [];
    let pending = "";
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (chunk: Buffer) => {
        pending += chunk.toString();
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) events.push(JSON.parse(line) as ProcessStreamEvent);
        if (events.some((event) => event.type === "output")) resolve();
      });
      stream.on("error", reject);
    });
    // The first line arrived while `sleep 30` still runs.
    expect(events[1]).toEqual({ type: "output", stream: "stdout", data: Buffer.from("first\n").toString("base64") });

    stream.close(); // RST_STREAM, as when the control plane's client aborts
    const shell = Number(await readFile(join(root, "pid"), "utf8"));
    await expect.poll(() => isProcessAlive(shell)).toBe(false);
  });
});
