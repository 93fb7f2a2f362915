import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { WebSocket } from "ws";
import { startUpgradeProxy as startProxy, type UpgradeProxy } from "../testing/index.ts";
import { TunnelError, type Logger } from "../transport.ts";
import { DIRECT_RELAY_PROTOCOL, type RelayFraming } from "./carrier.ts";
import { RelayAgent, type RelayAgentOptions, type RelayAgentState } from "./relay-agent.ts";
import type { RelayConnection } from "./relay-connection.ts";
import { RelayServer, type RelayServerOptions } from "./relay-server.ts";

const MiB = 1024 * 1024;
const AGENT_ID = "agent-1";
const GOOD_TOKEN = "good-token-s3cret";

type Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

interface LogEntry {
  level: string;
  obj: object;
  msg?: string;
}

function memoryLogger(): { log: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const record = (level: string) => (obj: object, msg?: string) => {
    entries.push({ level, obj, msg });
  };
  return { log: { debug: record("debug"), info: record("info"), warn: record("warn"), error: record("error") }, entries };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface Harness {
  relay: RelayServer;
  url: string;
  logs: LogEntry[];
  events: string[];
  authenticateCalls: () => number;
}

async function startRelay(options: Partial<RelayServerOptions> = {}): Promise<Harness> {
  const { log, entries } = memoryLogger();
  const events: string[] = [];
  let authenticateCalls = 0;
  const relay = new RelayServer({
    authenticate: async (token) => {
      authenticateCalls += 1;
      return token === GOOD_TOKEN ? { agentId: AGENT_ID } : null;
    },
    onConnect: (agentId) => events.push(`connect ${agentId}`),
    onDisconnect: (agentId) => events.push(`disconnect ${agentId}`),
    log,
    ...options,
  });
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket, head) => {
    if (relay.handleUpgrade(req, socket, head)) return;
    socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(async () => {
    await relay.close();
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { relay, url: `http://127.0.0.1:${port}/api/v1/agent/relay`, logs: entries, events, authenticateCalls: () => authenticateCalls };
}

/** The framing agents ask for unless a test says otherwise (each suite below runs under both). */
let agentFraming: RelayFraming = "direct";

function startAgent(harness: Harness, handler: Handler, options: Partial<RelayAgentOptions> = {}): { agent: RelayAgent; states: RelayAgentState[]; logs: LogEntry[] } {
  const { log, entries } = memoryLogger();
  const states: RelayAgentState[] = [];
  const agent = new RelayAgent({
    url: harness.url,
    token: GOOD_TOKEN,
    handler,
    framing: agentFraming,
    log,
    backoff: { initialMs: 20, maxMs: 200 },
    onStateChange: (state) => states.push(state),
    ...options,
  });
  agent.start();
  cleanups.push(() => agent.stop());
  return { agent, states, logs: entries };
}

/** A daemon handler that records each request's arrival and never answers. */
function hangingHandler(): { handler: Handler; arrivals: Array<Http2ServerRequest> } {
  const arrivals: Http2ServerRequest[] = [];
  return {
    handler: (req) => {
      arrivals.push(req);
    },
    arrivals,
  };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}

async function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Writes 64 KiB chunks as fast as HTTP/2 flow control lets it; reports how much it produced. */
function firehoseHandler(): { handler: Handler; produced: () => number; closed: Promise<void> } {
  let produced = 0;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const chunk = Buffer.alloc(64 * 1024, 1);
  return {
    handler: (_req, res) => {
      res.on("close", resolveClosed);
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const pump = () => {
        while (!res.destroyed && produced < 4096 * MiB) {
          produced += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
      };
      pump();
    },
    produced: () => produced,
    closed,
  };
}

describe.each(["direct", "websocket"] as const)("relay transport, %s framing", (framing) => {
  beforeEach(() => {
    agentFraming = framing;
  });

  test("connects with the framing the agent asked for", async () => {
    const harness = await startRelay();
    const { agent } = startAgent(harness, (_req, res) => res.end("ok"));
    const connection = (await harness.relay.dial(AGENT_ID)) as RelayConnection;

    expect([agent.framing, connection.framing]).toEqual([framing, framing]);
    expect(harness.logs.find((entry) => entry.msg === "relay agent connected")?.obj).toMatchObject({ agentId: AGENT_ID, framing });
    expect(await (await connection.fetch("/")).text()).toBe("ok");
  });

  test("serves 200 concurrent requests over one connection", { timeout: 20_000 }, async () => {
    const harness = await startRelay();
    const held: Array<() => void> = [];
    const total = 200;
    // Answers nothing until all 200 requests are in the daemon at once, so a transport
    // that serialises or caps concurrency below 200 times out.
    startAgent(harness, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        held.push(() => {
          res.writeHead(201, { "x-request": req.headers["x-request"] ?? "", "set-cookie": ["a=1", "b=2"] });
          res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
        });
        if (held.length === total) for (const respond of held) respond();
      });
    });
    const connection = await harness.relay.dial(AGENT_ID);

    const results = await Promise.all(
      Array.from({ length: total }, async (_, index) => {
        const response = await connection.fetch(`/echo/${index}?q=1`, { method: "post", body: `payload-${index}`, headers: { "X-Request": String(index) } });
        return { status: response.status, request: response.headers.get("x-request"), cookie: response.headers.get("set-cookie"), text: await response.text() };
      }),
    );

    expect(results).toHaveLength(total);
    results.forEach((result, index) => {
      expect(result).toEqual({ status: 201, request: String(index), cookie: "a=1, b=2", text: `POST /echo/${index}?q=1 payload-${index}` });
    });
  });

  test("returns empty bodies for 204 and HEAD", async () => {
    const harness = await startRelay();
    startAgent(harness, (req, res) => {
      res.writeHead(req.url === "/empty" ? 204 : 200, { "x-kind": "test" });
      if (req.method === "HEAD") res.end();
      else res.end("body");
    });
    const connection = await harness.relay.dial(AGENT_ID);

    const empty = await connection.fetch("/empty", { method: "DELETE" });
    const head = await connection.fetch("/thing", { method: "HEAD" });
    const full = await connection.fetch("/thing");

    expect([empty.status, empty.body, head.status, head.body, head.headers.get("x-kind")]).toEqual([204, null, 200, null, "test"]);
    expect(await full.text()).toBe("body");
  });

  test("echoes 64 MiB both ways through openStream intact", { timeout: 30_000 }, async () => {
    const harness = await startRelay();
    const daemonHash = createHash("sha256");
    let daemonReceived = 0;
    startAgent(harness, (req, res) => {
      if (req.url !== "/echo-stream" || req.method !== "POST") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200);
      req.on("data", (chunk: Buffer) => {
        daemonHash.update(chunk);
        daemonReceived += chunk.length;
      });
      req.pipe(res);
    });
    const connection = await harness.relay.dial(AGENT_ID);
    const stream = await connection.openStream("/echo-stream", { "x-purpose": "checksum" });

    const sentHash = createHash("sha256");
    const received = readAll(stream);
    for (let index = 0; index < 64; index += 1) {
      const chunk = randomBytes(MiB);
      sentHash.update(chunk);
      if (!stream.write(chunk)) await once(stream, "drain");
    }
    stream.end();
    const echoed = await received;
    const expected = sentHash.digest("hex");

    expect(daemonReceived).toBe(64 * MiB);
    expect(daemonHash.digest("hex")).toBe(expected);
    expect(echoed.length).toBe(64 * MiB);
    expect(createHash("sha256").update(echoed).digest("hex")).toBe(expected);
  });

  test("a large fetch body arrives intact, and what has arrived is readable while the rest is pending", async () => {
    const harness = await startRelay();
    const payload = randomBytes(8 * MiB);
    let finish = () => {};
    startAgent(harness, (req, res) => {
      res.writeHead(200);
      if (req.url === "/bulk") {
        res.end(payload);
        return;
      }
      res.write("first");
      finish = () => res.end("second");
    });
    const connection = await harness.relay.dial(AGENT_ID);

    // Chunks are views into the session's reads: any reuse of those buffers would show here.
    const chunks: Uint8Array[] = [];
    const bulk = (await connection.fetch("/bulk")).body?.getReader();
    if (!bulk) throw new Error("expected a body");
    for (let chunk = await bulk.read(); !chunk.done; chunk = await bulk.read()) chunks.push(chunk.value);
    expect(createHash("sha256").update(Buffer.concat(chunks)).digest("hex")).toBe(createHash("sha256").update(payload).digest("hex"));

    // A response that pauses mid-way: what came before the pause is readable during it.
    const trickle = (await connection.fetch("/trickle")).body?.getReader();
    if (!trickle) throw new Error("expected a body");
    expect(new TextDecoder().decode((await trickle.read()).value)).toBe("first");
    finish();
    expect(new TextDecoder().decode((await trickle.read()).value)).toBe("second");
    expect((await trickle.read()).done).toBe(true);
  });

  test("a slow fetch body reader holds the daemon back (flow control)", { timeout: 20_000 }, async () => {
    const harness = await startRelay();
    const firehose = firehoseHandler();
    startAgent(harness, firehose.handler);
    const connection = await harness.relay.dial(AGENT_ID);
    const rssBefore = process.memoryUsage().rss;

    const response = await connection.fetch("/firehose");
    const reader = response.body?.getReader();
    if (!reader) throw new Error("expected a body");
    let consumed = 0;
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      const { value } = await reader.read();
      consumed += value?.length ?? 0;
      await sleep(20);
    }

    // Without flow control the daemon would have written gigabytes by now.
    expect(firehose.produced() - consumed).toBeLessThan(48 * MiB);
    expect(firehose.produced()).toBeGreaterThan(8 * MiB);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * MiB);

    await reader.cancel();
    await expect(Promise.race([firehose.closed.then(() => "closed"), sleep(1000, "still open")])).resolves.toBe("closed");
  });

  test("an openStream that is not read holds the daemon back (flow control)", { timeout: 20_000 }, async () => {
    const harness = await startRelay();
    const firehose = firehoseHandler();
    startAgent(harness, firehose.handler);
    const connection = await harness.relay.dial(AGENT_ID);

    const stream = await connection.openStream("/firehose");
    await sleep(1000);

    expect(firehose.produced()).toBeGreaterThan(8 * MiB);
    expect(firehose.produced()).toBeLessThan(48 * MiB);

    stream.destroy();
    await expect(Promise.race([firehose.closed.then(() => "closed"), sleep(1000, "still open")])).resolves.toBe("closed");
  });

  test("dial waits for an agent to reconnect after the server drops it", async () => {
    const harness = await startRelay();
    const { agent, states } = startAgent(harness, (_req, res) => res.end("hello"));
    await agent.waitConnected();
    const first = await harness.relay.dial(AGENT_ID);
    expect(await (await first.fetch("/")).text()).toBe("hello");

    harness.relay.disconnect(AGENT_ID);

    expect(first.closed).toBe(true);
    expect(harness.relay.isConnected(AGENT_ID)).toBe(false);
    const second = await harness.relay.dial(AGENT_ID, { timeoutMs: 5000 });
    expect(second).not.toBe(first);
    expect(await (await second.fetch("/")).text()).toBe("hello");
    await expect(first.fetch("/")).rejects.toMatchObject({ name: "TunnelError", code: "connection_lost" });
    expect(harness.events).toEqual([`connect ${AGENT_ID}`, `disconnect ${AGENT_ID}`, `connect ${AGENT_ID}`]);
    expect(states).toEqual(["connecting", "connected", "disconnected", "connecting", "connected"]);
  });

  test("a new connection from the same agent replaces the old one", async () => {
    const harness = await startRelay();
    const first = startAgent(harness, (_req, res) => res.end("first"), { backoff: { initialMs: 30_000, maxMs: 30_000 } });
    await first.agent.waitConnected();
    const oldConnection = await harness.relay.dial(AGENT_ID);

    const second = startAgent(harness, (_req, res) => res.end("second"));
    await second.agent.waitConnected();
    await waitFor(() => oldConnection.closed);

    const connection = await harness.relay.dial(AGENT_ID);
    expect(await (await connection.fetch("/")).text()).toBe("second");
    expect(harness.relay.connectedAgents()).toEqual([AGENT_ID]);
    expect(harness.events).toEqual([`connect ${AGENT_ID}`, `connect ${AGENT_ID}`]);
    await waitFor(() => first.agent.state === "disconnected");
  });

  test("an in-flight request fails fast when the control plane drops the connection", { timeout: 5000 }, async () => {
    const harness = await startRelay();
    const hanging = hangingHandler();
    startAgent(harness, hanging.handler);
    const connection = await harness.relay.dial(AGENT_ID);
    const pending = connection.fetch("/hang");
    await waitFor(() => hanging.arrivals.length === 1);

    const started = performance.now();
    harness.relay.disconnect(AGENT_ID);
    const error = await pending.catch((caught: unknown) => caught);

    expect(performance.now() - started).toBeLessThan(250);
    expect(error).toBeInstanceOf(TunnelError);
    expect(error).toMatchObject({ code: "connection_lost", message: `connection to workspace agent ${AGENT_ID} lost` });
  });

  test("in-flight requests and streams fail fast when the agent's socket dies", { timeout: 5000 }, async () => {
    const harness = await startRelay();
    const hanging = hangingHandler();
    const { agent } = startAgent(harness, (req, res) => {
      if (req.url === "/hang") return hanging.handler(req, res);
      res.writeHead(200);
      res.write("first chunk");
    });
    const connection = await harness.relay.dial(AGENT_ID);
    const pending = connection.fetch("/hang");
    const stream = await connection.openStream("/stream");
    const streamError = once(stream, "error").then((args: unknown[]) => args[0]);
    const streamingResponse = await connection.fetch("/body");
    const reader = streamingResponse.body?.getReader();
    if (!reader) throw new Error("expected a body");
    await reader.read();
    await waitFor(() => hanging.arrivals.length === 1);
    const daemonRequestClosed = once(hanging.arrivals[0] as Http2ServerRequest, "close");

    const started = performance.now();
    await agent.stop();
    const [requestError, bodyError, duplexError] = await Promise.all([
      pending.catch((caught: unknown) => caught),
      reader.read().catch((caught: unknown) => caught),
      streamError,
    ]);

    expect(performance.now() - started).toBeLessThan(1000);
    for (const error of [requestError, bodyError, duplexError]) {
      expect(error).toBeInstanceOf(TunnelError);
      expect(error).toMatchObject({ code: "connection_lost" });
    }
    await daemonRequestClosed;
    expect(connection.closed).toBe(true);
  });

  test("aborting a fetch cancels the HTTP/2 stream", async () => {
    const harness = await startRelay();
    const hanging = hangingHandler();
    startAgent(harness, hanging.handler);
    const connection = await harness.relay.dial(AGENT_ID);
    const controller = new AbortController();
    const pending = connection.fetch("/hang", { signal: controller.signal });
    await waitFor(() => hanging.arrivals.length === 1);
    const daemonRequest = hanging.arrivals[0] as Http2ServerRequest;
    const daemonClosed = once(daemonRequest.stream, "close");

    controller.abort();

    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    await daemonClosed;
    expect(daemonRequest.stream.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(connection.closed).toBe(false);
  });

  test("openStream rejects with stream_refused on a non-2xx answer", async () => {
    const harness = await startRelay();
    startAgent(harness, (_req, res) => res.writeHead(404).end("no such stream"));
    const connection = await harness.relay.dial(AGENT_ID);

    await expect(connection.openStream("/missing")).rejects.toMatchObject({ name: "TunnelError", code: "stream_refused", status: 404 });
  });

  test("a bad token gets 401, the agent becomes unauthorized and says so once", async () => {
    const harness = await startRelay();
    const badToken = "wrong-token-0xdeadbeef";
    const { agent, states, logs } = startAgent(harness, (_req, res) => res.end(), { token: badToken, backoff: { initialMs: 10, maxMs: 30 } });

    await waitFor(() => harness.authenticateCalls() >= 4);

    expect(agent.state).toBe("unauthorized");
    expect(states).toEqual(["connecting", "unauthorized"]);
    expect(harness.relay.connectedAgents()).toEqual([]);
    expect(logs.filter((entry) => entry.level === "error")).toHaveLength(1);
    expect(JSON.stringify([logs, harness.logs])).not.toContain(badToken);

    const missingToken = await upgradeStatus(harness.url, {});
    const wrongToken = await upgradeStatus(harness.url, { authorization: `Bearer ${badToken}` });
    expect([missingToken.status, wrongToken.status, wrongToken.wwwAuthenticate]).toEqual([401, 401, "Bearer"]);
  });

  test("upgrades on other paths are left to the caller", async () => {
    const harness = await startRelay();
    const otherPath = await upgradeStatus(harness.url.replace("/api/v1/agent/relay", "/something-else"), { authorization: `Bearer ${GOOD_TOKEN}` });
    expect(otherPath.status).toBe(404);
    expect(harness.authenticateCalls()).toBe(0);
  });

  test("dial of an unknown agent times out with agent_unreachable", async () => {
    const harness = await startRelay();
    const started = performance.now();

    const error = await harness.relay.dial("nobody", { timeoutMs: 150 }).catch((caught: unknown) => caught);

    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TunnelError);
    expect(error).toMatchObject({ code: "agent_unreachable" });
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1000);
  });

  test("dial can be aborted and close() rejects waiting dials", async () => {
    const harness = await startRelay();
    const controller = new AbortController();
    const aborted = harness.relay.dial("nobody", { timeoutMs: 10_000, signal: controller.signal });
    const waiting = harness.relay.dial("nobody", { timeoutMs: 10_000 });

    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
    await harness.relay.close();
    await expect(waiting).rejects.toMatchObject({ name: "TunnelError", code: "agent_unreachable" });
  });

  test("ping returns the round-trip time in milliseconds", async () => {
    const harness = await startRelay();
    const { agent } = startAgent(harness, (_req, res) => res.end());
    // Dialling well after connect: the session has settled and exchanged SETTINGS by then.
    await agent.waitConnected();
    await sleep(100);
    const connection = await harness.relay.dial(AGENT_ID);

    const roundTripMs = await connection.ping();

    expect(typeof roundTripMs).toBe("number");
    expect(roundTripMs).toBeGreaterThanOrEqual(0);
    expect(roundTripMs).toBeLessThan(1000);
  });

  test("a peer that stops answering pings is dropped", async () => {
    const harness = await startRelay({ pingIntervalMs: 50 });
    // Upgrades, then says nothing: no pong, no HTTP/2 PING acknowledgement.
    const silent = framing === "websocket" ? await silentWebSocket(harness.url) : await silentDirectSocket(harness.url);
    cleanups.push(() => {
      silent.destroy();
    });
    await waitFor(() => harness.relay.isConnected(AGENT_ID));

    await waitFor(() => harness.events.includes(`disconnect ${AGENT_ID}`), 2000);

    expect(harness.relay.isConnected(AGENT_ID)).toBe(false);
  });
});

describe("relay framing fallback", () => {
  beforeEach(() => {
    agentFraming = "direct";
  });

  test("an agent behind a proxy that passes only WebSocket upgrades falls back to WebSocket framing", async () => {
    const harness = await startRelay();
    const proxy = await startUpgradeProxy(harness.url, (req) => (req.headers.upgrade?.toLowerCase() === "websocket" ? "forward" : 400));
    const { agent, logs } = startAgent({ ...harness, url: proxy.url }, (_req, res) => res.end("through the proxy"));

    const connection = (await harness.relay.dial(AGENT_ID)) as RelayConnection;

    expect(await (await connection.fetch("/")).text()).toBe("through the proxy");
    expect([agent.framing, connection.framing]).toEqual(["websocket", "websocket"]);
    expect(proxy.upgrades).toEqual([DIRECT_RELAY_PROTOCOL, "websocket"]);
    expect(logs.filter((entry) => entry.msg === "the direct relay upgrade was refused; using WebSocket framing").map((entry) => entry.obj)).toEqual([
      expect.objectContaining({ status: 400 }),
    ]);
    expect(JSON.stringify(logs)).not.toContain(GOOD_TOKEN);
  });

  test("a gateway error is retried as it is, not taken for a refusal of the direct upgrade", async () => {
    const harness = await startRelay();
    let refusals = 2;
    const proxy = await startUpgradeProxy(harness.url, () => (refusals-- > 0 ? 502 : "forward"));
    const { agent } = startAgent({ ...harness, url: proxy.url }, (_req, res) => res.end());

    const connection = (await harness.relay.dial(AGENT_ID)) as RelayConnection;

    expect([agent.framing, connection.framing]).toEqual(["direct", "direct"]);
    expect(proxy.upgrades).toEqual([DIRECT_RELAY_PROTOCOL, DIRECT_RELAY_PROTOCOL, DIRECT_RELAY_PROTOCOL]);
  });
});

/** Opens a relay WebSocket that never answers a ping. */
async function silentWebSocket(url: string): Promise<{ destroy(): void }> {
  const ws = new WebSocket(url.replace("http:", "ws:"), { headers: { authorization: `Bearer ${GOOD_TOKEN}` }, autoPong: false });
  await once(ws, "open");
  return { destroy: () => ws.terminate() };
}

/** Upgrades to the direct framing and never speaks HTTP/2. */
function silentDirectSocket(url: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { headers: { connection: "Upgrade", upgrade: DIRECT_RELAY_PROTOCOL, authorization: `Bearer ${GOOD_TOKEN}` } });
    request.on("upgrade", (_response, socket: net.Socket) => resolve(socket));
    request.on("response", (response) => reject(new Error(`expected 101, got ${response.statusCode}`)));
    request.on("error", reject);
    request.end();
  });
}

/** `startUpgradeProxy` in front of the relay, closed after the test. */
async function startUpgradeProxy(relayUrl: string, decide: Parameters<typeof startProxy>[1]): Promise<UpgradeProxy> {
  const proxy = await startProxy(relayUrl, decide);
  cleanups.push(() => proxy.close());
  return proxy;
}

function upgradeStatus(url: string, headers: Record<string, string>): Promise<{ status: number | undefined; wwwAuthenticate: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, {
      headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": randomBytes(16).toString("base64"), ...headers },
    });
    request.on("response", (response) => {
      response.resume();
      resolve({ status: response.statusCode, wwwAuthenticate: response.headers["www-authenticate"] });
    });
    request.on("upgrade", (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode, wwwAuthenticate: undefined });
    });
    request.on("error", reject);
  });
}
