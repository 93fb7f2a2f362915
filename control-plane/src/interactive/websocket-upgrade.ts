import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TunnelError, type AgentConnection } from "@kiln/tailnet";
import { WebSocket, WebSocketServer, createWebSocketStream, type RawData } from "ws";
import { z } from "zod";
import type { Tunnel } from "../api/context.ts";
import type { DatabaseHandle } from "../db/index.ts";
import { KilnError, ValidationError } from "../errors.ts";
import type { Logger } from "../logger.ts";
import { connect } from "../workspaces/connect.ts";
import { authenticateUpgrade } from "./authenticate.ts";
import { CloseCode, InteractiveKind, PtyClientMessage, PtyQuery, RAW_BYTES_PROTOCOL, TcpQuery, type PtyServerMessage } from "./protocol.ts";

export interface InteractiveDeps {
  database: DatabaseHandle;
  tunnel: Tunnel;
  log: Logger;
}

const ROUTE = /^\/api\/v1\/workspaces\/([^/]+)\/([a-z]+)$/;
/** Terminal output queued on a browser socket before the workspace side is paused. */
const PTY_SEND_HIGH_WATER = 1024 * 1024;
const PTY_SEND_LOW_WATER = 256 * 1024;
const PING_INTERVAL_MS = 25_000;

/**
 * WebSocket endpoints for people (not agents): a browser terminal, SSH and TCP port
 * forwarding, each bridged to a byte stream on the workspace daemon through the tunnel.
 * Authentication and the workspace check (owner or admin; anyone else gets 404) happen
 * before the handshake completes, so failures are plain HTTP answers with the usual
 * `{ error }` body.
 */
export class InteractiveEndpoints {
  readonly #deps: InteractiveDeps;
  readonly #log: Logger;
  readonly #server = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  readonly #pinger: NodeJS.Timeout;

  constructor(deps: InteractiveDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ module: "interactive" });
    // Keeps idle sessions alive through proxies that drop quiet connections.
    this.#pinger = setInterval(() => {
      for (const client of this.#server.clients) client.ping();
    }, PING_INTERVAL_MS);
    this.#pinger.unref();
  }

  /** Takes the upgrade if the path is one of ours; returns false otherwise. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(request.url ?? "/", "http://kiln");
    const match = ROUTE.exec(url.pathname);
    if (!match) return false;
    const kind = InteractiveKind.safeParse(match[2]);
    if (!kind.success) return false;
    socket.on("error", () => {});
    void this.#open(request, socket, head, decodeURIComponent(match[1]!), kind.data, url.searchParams).catch((error: unknown) => {
      if (error instanceof KilnError) {
        this.#log.debug({ code: error.code, path: url.pathname }, "interactive upgrade refused");
        return refuse(socket, error.status, { error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } });
      }
      this.#log.error({ err: error, path: url.pathname }, "interactive upgrade failed");
      refuse(socket, 500, { error: { code: "internal", message: "internal server error" } });
    });
    return true;
  }

  close(): void {
    clearInterval(this.#pinger);
    for (const client of this.#server.clients) client.terminate();
  }

  async #open(request: IncomingMessage, socket: Duplex, head: Buffer, workspace: string, kind: InteractiveKind, query: URLSearchParams): Promise<void> {
    const { db } = this.#deps.database;
    const actor = await authenticateUpgrade(db, request);
    const parameters = Object.fromEntries(query);
    const log = this.#log.child({ userId: actor.user.id, workspace, kind });
    const upgrade = request.headers.upgrade?.trim().toLowerCase();
    const raw = upgrade === RAW_BYTES_PROTOCOL;
    if (upgrade !== "websocket" && !(raw && kind !== "pty")) {
      const accepted = kind === "pty" ? "websocket" : `websocket or ${RAW_BYTES_PROTOCOL}`;
      throw new ValidationError(`invalid request: upgrade: expected ${accepted}, got ${JSON.stringify(request.headers.upgrade ?? "")}`, {
        issues: [{ field: "upgrade", reason: `expected ${accepted}` }],
      });
    }
    // Validate before reaching for the workspace, so bad input is a 400 even when it is down.
    const ptyQuery = kind === "pty" ? parseQuery(PtyQuery, parameters) : null;
    const tcpQuery = kind === "tcp" ? parseQuery(TcpQuery, parameters) : null;
    const connection = await connect(db, this.#deps.tunnel, actor, workspace);

    let stream: Duplex;
    let session: { id: string; created: boolean } | null = null;
    if (ptyQuery) {
      session = await openPtySession(connection, ptyQuery);
      stream = await openStream(connection, `/v1/pty/${encodeURIComponent(session.id)}/attach`, workspace);
    } else if (tcpQuery) {
      stream = await openStream(connection, `/v1/tcp?port=${tcpQuery.port}`, workspace, tcpQuery.port);
    } else {
      stream = await openStream(connection, "/v1/ssh", workspace);
    }
    if (socket.destroyed) {
      // The client left while we set up; do not leave a shell running that nobody asked to keep.
      stream.destroy();
      if (session?.created) void connection.fetch(`/v1/pty/${encodeURIComponent(session.id)}`, { method: "DELETE" }).then((response) => response.arrayBuffer(), () => undefined);
      return;
    }
    if (raw) {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${RAW_BYTES_PROTOCOL}\r\n\r\n`);
      log.info("interactive session opened");
      bridgeRawBytes(socket as Socket, head, stream, log);
      return;
    }
    this.#server.handleUpgrade(request, socket, head, (ws) => {
      log.info({ session: session?.id }, "interactive session opened");
      ws.once("close", (code) => log.info({ session: session?.id, code }, "interactive session closed"));
      if (session) bridgeTerminal(ws, stream, connection, session, log);
      else bridgeBytes(ws, stream, log);
    });
  }
}

function parseQuery<Schema extends z.ZodType>(schema: Schema, input: unknown): z.infer<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ field: issue.path.join(".") || "(query)", reason: issue.message }));
  throw new ValidationError(`invalid request: ${issues.map((issue) => `${issue.field}: ${issue.reason}`).join("; ")}`, { issues });
}

async function openPtySession(connection: AgentConnection, query: PtyQuery): Promise<{ id: string; created: boolean }> {
  if (query.session) {
    const path = `/v1/pty/${encodeURIComponent(query.session)}`;
    const response = query.cols && query.rows
      ? await connection.fetch(`${path}/resize`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ cols: query.cols, rows: query.rows }) })
      : await connection.fetch(path);
    if (response.status === 404) throw new KilnError("pty_not_found", `no terminal session '${query.session}' in this workspace; it may have ended`, 404, { session: query.session });
    await daemonResult(response);
    return { id: query.session, created: false };
  }
  const response = await connection.fetch("/v1/pty", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ cols: query.cols ?? 80, rows: query.rows ?? 24, ...(query.command ? { command: query.command } : {}) }),
  });
  const created = (await daemonResult(response)) as { id: string };
  return { id: created.id, created: true };
}

/** A daemon JSON answer, or its `{ error }` carried over as a KilnError with the same status class. */
async function daemonResult(response: Response): Promise<unknown> {
  const body = (await response.json().catch(() => null)) as { error?: { code: string; message: string; details?: Record<string, unknown> } } | null;
  if (response.ok) return body;
  const status = response.status === 404 || response.status === 409 || response.status === 400 ? response.status : 502;
  throw new KilnError(body?.error?.code ?? "agent_error", body?.error?.message ?? `workspace agent answered ${response.status}`, status, body?.error?.details);
}

async function openStream(connection: AgentConnection, path: string, workspace: string, port?: number): Promise<Duplex> {
  try {
    return await connection.openStream(path);
  } catch (error) {
    if (error instanceof TunnelError && error.code === "stream_refused" && port !== undefined && error.status === 502) {
      throw new KilnError("connection_refused", `nothing is listening on port ${port} in workspace '${workspace}'`, 502, { port });
    }
    if (error instanceof TunnelError) throw new KilnError("agent_unreachable", `workspace '${workspace}': ${error.message}`, 503, { cause: error.code });
    throw error;
  }
}

function closeFor(error: Error): { code: number; reason: string } {
  if (error instanceof TunnelError && error.code === "connection_lost") return { code: CloseCode.agentLost, reason: "connection to the workspace agent was lost" };
  return { code: CloseCode.streamFailed, reason: "the workspace ended the stream" };
}

/**
 * The WebSocket as a byte stream whose queued writes leave as one message: the workspace side
 * hands over one HTTP/2 DATA frame (≤ 16 KiB) at a time, and a message each would multiply the
 * per-message work on both ends.
 */
function batchedByteStream(ws: WebSocket): Duplex {
  const duplex = createWebSocketStream(ws);
  duplex._writev = (chunks, callback) => {
    ws.send(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((entry) => entry.chunk as Buffer)), callback);
  };
  return duplex;
}

/** Raw bytes both ways with stream backpressure (SSH, TCP). */
function bridgeBytes(ws: WebSocket, stream: Duplex, log: Logger): void {
  const socketStream = batchedByteStream(ws);
  socketStream.on("error", () => {});
  socketStream.pipe(stream);
  stream.pipe(socketStream);
  stream.on("error", (error) => {
    log.debug({ err: error }, "workspace stream failed");
    const { code, reason } = closeFor(error);
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
  });
  ws.once("close", () => stream.destroy());
}

/**
 * Raw bytes both ways on the upgraded connection itself. A failed workspace stream resets the
 * connection (the client reports a lost connection); a finished one ends it with a FIN.
 */
function bridgeRawBytes(socket: Socket, head: Buffer, stream: Duplex, log: Logger): void {
  socket.setNoDelay(true);
  socket.setTimeout(0);
  if (head.length > 0) stream.write(head);
  socket.pipe(stream);
  stream.pipe(socket);
  socket.on("error", () => stream.destroy());
  stream.on("error", (error) => {
    log.debug({ err: error }, "workspace stream failed");
    socket.resetAndDestroy();
  });
  socket.once("close", () => {
    stream.destroy();
    log.info("interactive session closed");
  });
}

/**
 * A terminal: binary frames are bytes; text frames carry JSON control messages. Output is
 * sent as it comes while little is queued on the socket, and the workspace side is paused
 * when a slow browser lets more pile up.
 */
function bridgeTerminal(ws: WebSocket, stream: Duplex, connection: AgentConnection, session: { id: string; created: boolean }, log: Logger): void {
  const send = (message: PtyServerMessage) => ws.send(JSON.stringify(message));
  send({ type: "session", id: session.id, created: session.created });
  let queued = 0;
  let paused = false;
  stream.on("data", (chunk: Buffer) => {
    queued += chunk.length;
    ws.send(chunk, { binary: true }, () => {
      queued -= chunk.length;
      if (paused && queued <= PTY_SEND_LOW_WATER) {
        paused = false;
        stream.resume();
      }
    });
    if (!paused && queued > PTY_SEND_HIGH_WATER) {
      paused = true;
      stream.pause();
    }
  });
  ws.on("message", (data: RawData, isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) return void writeInput(bytes);
    let parsed: PtyClientMessage;
    try {
      parsed = PtyClientMessage.parse(JSON.parse(bytes.toString("utf8")));
    } catch {
      return;
    }
    if (parsed.type === "input") writeInput(Buffer.from(parsed.data, "utf8"));
    else void resize(parsed.cols, parsed.rows);
  });
  const writeInput = (bytes: Buffer) => {
    if (!stream.write(bytes)) {
      ws.pause();
      stream.once("drain", () => ws.resume());
    }
  };
  const resize = async (cols: number, rows: number) => {
    try {
      const response = await connection.fetch(`/v1/pty/${encodeURIComponent(session.id)}/resize`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ cols, rows }) });
      // Read to the end: cancelling a tunnel response body mid-stream trips a node web-stream bug (enqueue after close).
      await response.arrayBuffer();
    } catch (error) {
      log.debug({ err: error }, "pty resize failed");
    }
  };
  stream.once("end", async () => {
    // The program ended: tell the viewer how, then close normally.
    try {
      const response = await connection.fetch(`/v1/pty/${encodeURIComponent(session.id)}`);
      const info = (await response.json()) as { exit_code?: number | null; signal?: string | null };
      if (response.ok && ws.readyState === WebSocket.OPEN) send({ type: "exit", exit_code: info.exit_code ?? null, signal: info.signal ?? null });
    } catch {
      // The exit status is a courtesy; the close below still tells the viewer it ended.
    }
    if (ws.readyState === WebSocket.OPEN) ws.close(CloseCode.normal, "terminal session ended");
  });
  stream.on("error", (error) => {
    log.debug({ err: error }, "pty stream failed");
    const { code, reason } = closeFor(error);
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
  });
  ws.once("close", () => stream.destroy());
}

function refuse(socket: Duplex, status: number, body: unknown): void {
  if (socket.destroyed) return;
  const text = JSON.stringify(body);
  const reason = { 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 502: "Bad Gateway", 503: "Service Unavailable" }[status] ?? "Error";
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
}
