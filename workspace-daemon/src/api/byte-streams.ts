import { closeSync } from "node:fs";
import type { Http2ServerRequest, Http2ServerResponse, ServerHttp2Stream } from "node:http2";
import net from "node:net";
import type { Logger } from "pino";
import { DaemonError, parseInput } from "../errors.ts";
import { openRawFileDescriptor, sendRawFile } from "../files/index.ts";
import { RawReadRequest, TcpStreamRequest, type ErrorBody } from "../protocol.ts";
import type { PtyManager } from "../pty/index.ts";
import type { SshServer } from "../ssh/index.ts";
import { REQUEST_ID_HEADER, requestIdFor } from "./app.ts";

export type RequestHandler = (request: Http2ServerRequest, response: Http2ServerResponse) => void;

export interface ByteStreamDeps {
  /** Directory relative paths resolve against: the app's root. */
  root: string;
  pty: PtyManager;
  ssh: SshServer;
  log: Logger;
}

const ATTACH_PATH = /^\/v1\/pty\/([^/]+)\/attach$/;

/**
 * Serves the daemon's raw byte streams (see protocol.ts: PTY attach, SSH, TCP) straight on
 * the HTTP/2 stream, which is already a flow-controlled duplex, and hands every other
 * request to `next` (the Hono app). These bypass Hono because its node adapter reads and
 * writes bodies through web streams and tears a POST down once its response is sent.
 * Raw file reads (GET /v1/files/raw) are answered here too, through a few reused buffers: the
 * app's route, which answers the same for callers of the app itself, needs a fresh buffer per chunk.
 */
export function withByteStreams(deps: ByteStreamDeps, next: RequestHandler): RequestHandler {
  const log = deps.log.child({ module: "byte-streams" });
  return (request, response) => {
    const path = request.url.split("?", 1)[0] ?? "";
    const fileRead = request.method === "GET" && path === "/v1/files/raw";
    if (request.method !== "POST" && !fileRead) return next(request, response);
    const attach = ATTACH_PATH.exec(path);
    try {
      if (fileRead) {
        sendFile(request, deps.root, log);
      } else if (attach) {
        const session = deps.pty.get(decodeURIComponent(attach[1]!));
        session.attach(accept(request.stream));
      } else if (path === "/v1/ssh") {
        deps.ssh.accept(accept(request.stream));
      } else if (path === "/v1/tcp") {
        const { port } = parseInput(TcpStreamRequest, queryOf(request));
        connectTcp(request.stream, port, log);
      } else {
        next(request, response);
      }
    } catch (error) {
      if (!(error instanceof DaemonError)) {
        log.error({ err: error, path }, "byte stream crashed");
        return refuse(request.stream, 500, { error: { code: "internal_error", message: "internal error" } });
      }
      refuse(request.stream, error.status, { error: { code: error.code, message: error.message, details: error.details } });
    }
  };
}

function accept(stream: ServerHttp2Stream): ServerHttp2Stream {
  stream.on("error", () => {});
  stream.respond({ ":status": 200, "content-type": "application/octet-stream", "cache-control": "no-store" });
  return stream;
}

function refuse(stream: ServerHttp2Stream, status: number, body: ErrorBody): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.on("error", () => {});
  stream.respond({ ":status": status, "content-type": "application/json" });
  stream.end(JSON.stringify(body));
}

function sendFile(request: Http2ServerRequest, root: string, log: Logger): void {
  const file = openRawFileDescriptor(root, parseInput(RawReadRequest, queryOf(request)));
  const stream = request.stream;
  try {
    stream.respond({
      ":status": 200,
      "content-type": "application/octet-stream",
      "content-length": file.size,
      [REQUEST_ID_HEADER]: requestIdFor(header(request, REQUEST_ID_HEADER)),
    });
  } catch (error) {
    closeSync(file.fd);
    if (stream.destroyed) return; // the caller went away first
    throw error;
  }
  const sending = sendRawFile(file, stream);
  stream.on("error", () => {});
  stream.once("close", () => {
    sending.stop();
    if (!stream.writableFinished) log.debug({ path: file.path }, "raw file read ended early");
  });
}

function queryOf(request: Http2ServerRequest): Record<string, string> {
  return Object.fromEntries(new URL(request.url, "http://daemon").searchParams);
}

function header(request: Http2ServerRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** A TCP connection to 127.0.0.1:port in the workspace; refused before any byte flows if nothing listens. */
function connectTcp(stream: ServerHttp2Stream, port: number, log: Logger): void {
  const socket = net.connect({ host: "127.0.0.1", port });
  const abandon = () => socket.destroy();
  stream.once("close", abandon);
  socket.once("error", (error: NodeJS.ErrnoException) => {
    log.debug({ port, err: error }, "tcp stream connect failed");
    refuse(stream, 502, { error: { code: "connection_refused", message: `nothing accepted a connection on 127.0.0.1:${port} in the workspace (${error.code ?? error.message})`, details: { port } } });
  });
  socket.once("connect", () => {
    socket.removeAllListeners("error");
    stream.off("close", abandon);
    accept(stream);
    socket.setNoDelay(true);
    socket.pipe(stream);
    stream.pipe(socket);
    socket.once("close", () => stream.end());
    stream.once("close", () => socket.end());
    socket.on("error", () => stream.destroy());
    stream.on("error", () => socket.destroy());
  });
}
