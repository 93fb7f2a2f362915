// Raw file reads as the tunnel gets them: the daemon's whole handler (byte streams in front of
// the Hono app) behind a real node:http2 server.
import { createHash, randomBytes } from "node:crypto";
import { appendFile, mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { connect, constants, createServer, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { descriptorsOpenOn, silentLog } from "../testing/fixture.ts";
import { startInteractiveDaemon, type InteractiveDaemon } from "../testing/interactive-daemon.ts";
import { withByteStreams } from "./byte-streams.ts";

const MiB = 1024 * 1024;

interface Download {
  headers: IncomingHttpHeaders;
  body: Buffer;
  error?: Error;
}

function request(daemon: InteractiveDaemon, path: string, headers: Record<string, string> = {}): ClientHttp2Stream {
  return daemon.client.request({ ":method": "GET", ":path": path, ...headers });
}

/** Reads the whole response; a stream error is returned with what came before it. */
function download(stream: ClientHttp2Stream): Promise<Download> {
  return new Promise((resolve) => {
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (received) => (headers = received));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ headers, body: Buffer.concat(chunks) }));
    stream.on("error", (error) => resolve({ headers, body: Buffer.concat(chunks), error }));
  });
}

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

describe("GET /v1/files/raw behind node:http2", () => {
  let root: string;
  let daemon: InteractiveDaemon;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-raw-"));
    daemon = await startInteractiveDaemon(root, join(root, ".kiln"));
  });
  afterEach(async () => {
    await daemon.close();
    await rm(root, { recursive: true, force: true });
  });

  test("sends a file of many chunks byte for byte with its length and the caller's request id, and closes it", async () => {
    // Not a multiple of the read size, so the last read is a short one.
    const bytes = randomBytes(9 * MiB + 12_345);
    const path = join(root, "blob.bin");
    await writeFile(path, bytes);

    // The reader pauses now and then, so the daemon's writes queue behind flow control: a buffer
    // read into again before node had sent it would show in the hash.
    const stream = request(daemon, "/v1/files/raw?path=blob.bin", { "x-request-id": "req-42" });
    let sincePause = 0;
    stream.on("data", (chunk: Buffer) => {
      sincePause += chunk.length;
      if (sincePause < MiB) return;
      sincePause = 0;
      stream.pause();
      setTimeout(() => stream.resume(), 5);
    });
    const { headers, body, error } = await download(stream);

    expect(error).toBeUndefined();
    expect(headers).toMatchObject({ ":status": 200, "content-type": "application/octet-stream", "content-length": String(bytes.length), "x-request-id": "req-42" });
    expect(body.length).toBe(bytes.length);
    expect(sha256(body)).toBe(sha256(bytes));
    expect(await descriptorsOpenOn(path)).toBe(0);
  });

  test("is answered in front of the app, which gets every other request", async () => {
    await writeFile(join(root, "a.txt"), "alpha");
    const reachedApp: string[] = [];
    const server = createServer(
      withByteStreams({ root, pty: daemon.pty, ssh: daemon.ssh, log: silentLog }, (req, res) => {
        reachedApp.push(`${req.method} ${req.url}`);
        res.writeHead(418).end();
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const get = (path: string, method = "GET") => download(client.request({ ":method": method, ":path": path }));
      expect((await get("/v1/files/raw?path=a.txt")).body.toString()).toBe("alpha");
      expect((await get("/v1/files/raw?path=a.txt", "HEAD")).headers[":status"]).toBe(418);
      expect((await get("/v1/files/read?path=a.txt")).headers[":status"]).toBe(418);
      expect(reachedApp).toEqual(["HEAD /v1/files/raw?path=a.txt", "GET /v1/files/read?path=a.txt"]);
    } finally {
      client.destroy();
      server.close();
    }
  });

  test("sends an empty file as an empty body", async () => {
    await writeFile(join(root, "empty"), "");
    const { headers, body, error } = await download(request(daemon, "/v1/files/raw?path=empty"));
    expect([error, headers[":status"], headers["content-length"], body.length]).toEqual([undefined, 200, "0", 0]);
    expect(headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("refuses a missing file, a directory and a missing path with JSON errors", async () => {
    await mkdir(join(root, "dir"));
    const missing = await download(request(daemon, "/v1/files/raw?path=nope.bin"));
    const directory = await download(request(daemon, "/v1/files/raw?path=dir"));
    const noPath = await download(request(daemon, "/v1/files/raw"));

    expect([missing.headers[":status"], JSON.parse(missing.body.toString())]).toEqual([404, { error: expect.objectContaining({ code: "not_found" }) }]);
    expect([directory.headers[":status"], JSON.parse(directory.body.toString())]).toEqual([400, { error: expect.objectContaining({ code: "is_directory" }) }]);
    expect(noPath.headers[":status"]).toBe(400);
    expect(JSON.stringify(JSON.parse(noPath.body.toString()))).toContain("path");
  });

  test("stops at the length it announced when the file grows meanwhile", async () => {
    const path = join(root, "growing.log");
    await writeFile(path, Buffer.alloc(3 * MiB, "a"));
    const stream = request(daemon, "/v1/files/raw?path=growing.log");
    const received = download(stream);
    await new Promise((resolve) => stream.once("response", resolve));
    await appendFile(path, "more");

    const { headers, body, error } = await received;
    expect([error, headers["content-length"], body.length, body.includes("more")]).toEqual([undefined, String(3 * MiB), 3 * MiB, false]);
  });

  test("resets the stream when the file shrinks under it, and closes the file", async () => {
    const path = join(root, "shrinking.bin");
    await writeFile(path, Buffer.alloc(16 * MiB, 1));
    const stream = request(daemon, "/v1/files/raw?path=shrinking.bin");
    const received = download(stream);
    // Hold the body back (flow control stops the daemon after ~1 MiB), then cut the file.
    await new Promise((resolve) => stream.once("data", resolve));
    stream.pause();
    await truncate(path, 0);
    stream.resume();

    const { body, error } = await received;
    expect(error?.message).toMatch(/Stream closed with error code NGHTTP2_INTERNAL_ERROR/);
    expect(body.length).toBeLessThan(16 * MiB);
    expect(await descriptorsOpenOn(path)).toBe(0);
  });

  test("a caller that cancels mid-file stops the reading and the file is closed", async () => {
    const path = join(root, "big.bin");
    await writeFile(path, Buffer.alloc(64 * MiB, 2));
    const stream = request(daemon, "/v1/files/raw?path=big.bin");
    await new Promise((resolve) => stream.once("data", resolve));
    stream.pause();
    expect(await descriptorsOpenOn(path)).toBe(1);

    // As the relay's client cancels (a NO_ERROR reset does not reach a response held by flow control).
    stream.close(constants.NGHTTP2_CANCEL);
    expect(await descriptorsOpenOn(path)).toBe(0);
  });
});
