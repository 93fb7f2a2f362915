import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";

/**
 * Everything between the workspace daemon and the control plane passes a recording TCP proxy (the
 * workspace's KILN_URL points at it): the relay connection carrying HTTP/2 and the daemon's plain HTTP
 * calls. A chat whose provider key is distinctive then runs tool calls in the workspace, and the capture
 * must hold no trace of the key, while markers the tool calls carried must be found by the same search.
 */
describe("the provider key never crosses the workspace tunnel", () => {
  const key = `sk-test-${randomBytes(16).toString("hex")}`;
  let proxy: RecordingProxy;
  let h: ChatHarness;
  let workspace: { id: string; directory: string };

  beforeAll(async () => {
    proxy = await startRecordingProxy();
    h = await startChatHarness({ apiKey: key, accessUrl: proxy.url });
    proxy.forwardTo(Number(new URL(h.server.url).port));
    workspace = await h.workspace("dev");
  });
  afterAll(async () => {
    await h?.close();
    await proxy?.close();
  });

  it("is absent from every byte between daemon and server while tool calls run, and from the workspace", async () => {
    // Shaped like the key, so finding them shows the search would find the key.
    const commandMarker = `sk-mark-${randomBytes(16).toString("hex")}`;
    const base64Marker = `sk-base-${randomBytes(16).toString("hex")}`;
    const pathMarker = `sk-path-${randomBytes(16).toString("hex")}`;
    const bigFile = Array.from({ length: 3000 }, (_, index) => `line ${index + 1} ${randomBytes(12).toString("hex")}`).join("\n") + "\n";
    const lastBigLine = bigFile.trimEnd().split("\n").at(-1)!;

    h.fake.enqueue(
      { type: "respond", text: "Writing notes.", toolCalls: [{ id: "call_write", name: "write_file", input: { path: `notes/${pathMarker}.txt`, content: `${Buffer.from(base64Marker).toString("base64")}\n` } }] },
      { type: "respond", toolCalls: [{ id: "call_echo", name: "execute", input: { command: `echo ${commandMarker} && cat notes/*.txt` } }] },
      { type: "respond", toolCalls: [{ id: "call_read", name: "read_file", input: { path: `notes/${pathMarker}.txt` } }] },
      { type: "respond", toolCalls: [{ id: "call_env", name: "execute", input: { command: "env; cat /proc/self/environ" } }] },
      { type: "respond", toolCalls: [{ id: "call_big_write", name: "write_file", input: { path: "big.txt", content: bigFile } }] },
      { type: "respond", toolCalls: [{ id: "call_big_cat", name: "execute", input: { command: "wc -l big.txt && cat big.txt" } }, { id: "call_big_read", name: "read_file", input: { path: "big.txt" } }] },
      { type: "respond", text: "All done." },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "take some notes and look around", workspace: "dev" });
    expect(created.status).toBe(201);
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"], 60_000);
    expect(chat.status, chat.last_error).toBe("waiting");

    // The key was live: the provider got it on every request of this turn.
    expect(h.fake.requests.length).toBe(7);
    for (const request of h.fake.requests) expect(Object.values(request.headers)).toContain(`Bearer ${key}`);
    // Every tool call ran in the workspace and succeeded.
    const parts = (await h.messages(created.body.id)).flatMap((message: { parts: { type: string; toolCallId: string; isError?: boolean; output: string }[] }) => message.parts);
    const results = new Map(parts.filter((part) => part.type === "tool-result").map((part) => [part.toolCallId, part]));
    expect([...results.keys()]).toEqual(["call_write", "call_echo", "call_read", "call_env", "call_big_write", "call_big_cat", "call_big_read"]);
    expect([...results.values()].filter((result) => result.isError)).toEqual([]);
    expect(results.get("call_echo")?.output).toContain(commandMarker);
    expect(results.get("call_env")?.output).toContain("PAGER=cat");
    expect(results.get("call_big_cat")?.output).toContain(lastBigLine);

    const capture = await captureViews(proxy.connections);
    expect(capture.relayConnections, "the relay connection went through the proxy").toBeGreaterThan(0);
    expect(capture.directRelayConnections, "the daemon used the direct framing (HTTP/2 on the upgraded socket)").toBe(capture.relayConnections);
    expect(capture.requests.length, "HTTP/2 requests decoded from the relay").toBeGreaterThanOrEqual(7);
    // Nothing is compressed, so a byte search sees every body.
    expect(capture.views.filter((view) => /content-encoding:\s*(gzip|br|deflate|zstd)/i.test(view.bytes.toString("latin1"))).map((view) => view.name)).toEqual([]);
    expect(capture.requests.filter((request) => request.headers["content-encoding"]).map((request) => request.headers[":path"])).toEqual([]);

    // What crossed is visible to the search: the command in the request, its output in the response,
    // a base64-encoded marker, a marker in a :path (HPACK-coded on the wire, so seen once decoded), and the
    // tail of the large output.
    const echoRequest = capture.requests.find((request) => request.body.includes(commandMarker));
    expect(echoRequest?.headers[":path"]).toBe("/v1/processes");
    expect(tracesIn(capture.views, commandMarker).map((trace) => `${trace.view}: ${trace.needle}`)).toEqual(expect.arrayContaining([
      `${capture.relayRequestView}: ${commandMarker}`, `${capture.relayResponseView}: ${commandMarker}`,
    ]));
    expect(tracesIn(capture.views, base64Marker).some((trace) => trace.encoding !== "plain")).toBe(true);
    expect(capture.requests.some((request) => request.headers[":path"]?.includes(pathMarker) && request.headers[":path"]?.startsWith("/v1/files/read?"))).toBe(true);
    expect(tracesIn(capture.views, pathMarker).some((trace) => trace.view === "decoded relay request headers")).toBe(true);
    expect(capture.views.some((view) => view.name === capture.relayResponseView && view.bytes.includes(lastBigLine))).toBe(true);

    expect(tracesIn(capture.views, key)).toEqual([]);

    // Nor in the workspace after the turn: its files, its home and the daemon's log (daemon.log beside home).
    const files = filesUnder(path.dirname(workspace.directory));
    expect(files.map((file) => path.basename(file.name))).toEqual(expect.arrayContaining(["daemon.log", `${pathMarker}.txt`, "big.txt"]));
    expect(tracesIn(files.map((file) => ({ name: file.name, bytes: file.bytes })), key)).toEqual([]);
  });
});

interface RecordedConnection {
  /** Daemon to control plane. */
  toServer: Buffer[];
  /** Control plane to daemon. */
  toDaemon: Buffer[];
}

interface RecordingProxy {
  url: string;
  connections: RecordedConnection[];
  forwardTo(port: number): void;
  close(): Promise<void>;
}

/** A loopback TCP proxy that forwards to the server and keeps every byte in both directions. */
async function startRecordingProxy(): Promise<RecordingProxy> {
  const connections: RecordedConnection[] = [];
  const sockets = new Set<net.Socket>();
  let upstreamPort: number | undefined;
  const server = net.createServer((client) => {
    if (upstreamPort === undefined) return void client.destroy();
    const recorded: RecordedConnection = { toServer: [], toDaemon: [] };
    connections.push(recorded);
    const upstream = net.connect(upstreamPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    }
    client.on("data", (chunk: Buffer) => recorded.toServer.push(Buffer.from(chunk)));
    upstream.on("data", (chunk: Buffer) => recorded.toDaemon.push(Buffer.from(chunk)));
    client.pipe(upstream).on("error", () => client.destroy());
    upstream.pipe(client).on("error", () => upstream.destroy());
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections,
    forwardTo: (port) => void (upstreamPort = port),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface View {
  name: string;
  bytes: Buffer;
}

interface DecodedRequest {
  headers: http2.IncomingHttpHeaders;
  body: string;
}

/**
 * The capture seen several ways, so a key split by framing is still found: each direction's raw bytes,
 * the relay's HTTP/2 byte streams (what follows the 101), and the HTTP/2 requests
 * the control plane sent, decoded by a real HTTP/2 server (headers are HPACK-coded, often Huffman).
 */
async function captureViews(
  connections: RecordedConnection[],
): Promise<{ views: View[]; requests: DecodedRequest[]; relayConnections: number; directRelayConnections: number; relayRequestView: string; relayResponseView: string }> {
  const relayRequestView = "relay payload, control plane to daemon";
  const relayResponseView = "relay payload, daemon to control plane";
  const views: View[] = [
    { name: "raw, daemon to control plane", bytes: Buffer.concat(connections.flatMap((connection) => connection.toServer)) },
    { name: "raw, control plane to daemon", bytes: Buffer.concat(connections.flatMap((connection) => connection.toDaemon)) },
  ];
  const requests: DecodedRequest[] = [];
  let relayConnections = 0;
  let directRelayConnections = 0;
  for (const connection of connections) {
    const toServer = Buffer.concat(connection.toServer);
    const toDaemon = Buffer.concat(connection.toDaemon);
    if (!toServer.toString("latin1").startsWith("GET /api/v1/agent/relay") || !toDaemon.toString("latin1").startsWith("HTTP/1.1 101")) continue;
    relayConnections++;
    // The direct framing (asserted above): HTTP/2 follows the 101 as it is. (With WebSocket framing the
    // same HTTP/2 bytes travel in binary messages; the relay tests cover that framing.)
    if (/^upgrade:\s*kiln-relay-h2\s*$/im.test(httpHead(toDaemon))) directRelayConnections++;
    const toServerPayload = afterHttpHead(toServer);
    const toDaemonPayload = afterHttpHead(toDaemon);
    views.push({ name: relayResponseView, bytes: toServerPayload }, { name: relayRequestView, bytes: toDaemonPayload });
    requests.push(...(await decodeHttp2Requests(toDaemonPayload)));
  }
  views.push(
    { name: "decoded relay request headers", bytes: Buffer.from(requests.map((request) => JSON.stringify(request.headers)).join("\n")) },
    { name: "decoded relay request bodies", bytes: Buffer.from(requests.map((request) => request.body).join("\n")) },
  );
  return { views, requests, relayConnections, directRelayConnections, relayRequestView, relayResponseView };
}

function httpHead(bytes: Buffer): string {
  const end = bytes.indexOf("\r\n\r\n");
  return bytes.subarray(0, end < 0 ? 0 : end).toString("latin1");
}

function afterHttpHead(bytes: Buffer): Buffer {
  const end = bytes.indexOf("\r\n\r\n");
  return end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4);
}

/** Replays the client side of an HTTP/2 connection into a real HTTP/2 server and returns every request it decoded. */
async function decodeHttp2Requests(clientBytes: Buffer): Promise<DecodedRequest[]> {
  // Windows at least as large as the daemon's (tailnet http2-settings.ts), so the replay accepts every DATA frame it did.
  const server = http2.createServer({ settings: { initialWindowSize: 2 ** 31 - 1, maxConcurrentStreams: 100_000 }, maxSessionMemory: 1024 });
  const requests: DecodedRequest[] = [];
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      requests.push({ headers, body: Buffer.concat(chunks).toString("utf8") });
    };
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", record);
    stream.on("close", record);
    stream.on("error", () => {});
  });
  const sessions: http2.ServerHttp2Session[] = [];
  const closed = new Promise<void>((resolve) => server.on("session", (session) => {
    sessions.push(session);
    session.setLocalWindowSize(2 ** 31 - 1);
    session.on("error", () => {});
    session.once("close", () => resolve());
  }));
  const socket = new Duplex({ read() {}, write: (_chunk, _encoding, callback) => callback() });
  server.emit("connection", socket);
  socket.push(clientBytes);
  // The end of the input closes the session once everything before it has been read.
  socket.push(null);
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  for (const session of sessions) session.destroy();
  server.close();
  return requests;
}

interface Trace {
  view: string;
  encoding: "plain" | "base64" | "base64url";
  needle: string;
}

/**
 * Where `secret` shows in the views: whole or as any 16-character slice, plain or in base64/base64url at
 * each of the three byte alignments it can have inside a longer encoded text.
 */
function tracesIn(views: View[], secret: string): Trace[] {
  const window = 16;
  const needles = new Map<string, Trace["encoding"]>();
  const addSlices = (text: string, encoding: Trace["encoding"]) => {
    for (let start = 0; start + window <= text.length; start++) needles.set(text.slice(start, start + window), encoding);
  };
  needles.set(secret, "plain");
  addSlices(secret, "plain");
  for (const lead of [0, 1, 2]) {
    const bytes = Buffer.concat([Buffer.alloc(lead), Buffer.from(secret)]);
    for (const encoding of ["base64", "base64url"] as const) {
      const encoded = bytes.toString(encoding).replace(/=+$/, "");
      // Drop the characters that depend on the bytes around the secret.
      const stable = encoded.slice(lead === 0 ? 0 : 4, bytes.length % 3 === 0 ? undefined : -4);
      needles.set(stable, encoding);
      addSlices(stable, encoding);
    }
  }
  const traces: Trace[] = [];
  for (const view of views) {
    for (const [needle, encoding] of needles) if (view.bytes.includes(needle)) traces.push({ view: view.name, encoding, needle });
  }
  return traces;
}

function filesUnder(directory: string): { name: string; bytes: Buffer }[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) return filesUnder(full);
    return entry.isFile() ? [{ name: full, bytes: readFileSync(full) }] : [];
  });
}
