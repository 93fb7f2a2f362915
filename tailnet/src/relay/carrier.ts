import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocket } from "ws";
import type { Logger } from "../transport.ts";
import { startHeartbeat } from "./heartbeat.ts";
import { webSocketByteStream } from "./websocket-stream.ts";

/**
 * The `Upgrade` token of the direct relay protocol: after `101 Switching Protocols` the connection
 * itself carries HTTP/2, with the daemon (which dialed) as the HTTP/2 server. Not `h2c`, whose upgrade
 * makes the dialer the client and its request stream 1.
 */
export const DIRECT_RELAY_PROTOCOL = "kiln-relay-h2";

export type RelayFraming = "direct" | "websocket";

/**
 * What one relay connection's HTTP/2 runs over. `direct`: the upgraded TCP (or TLS) socket, which node's
 * HTTP/2 reads and writes natively. `websocket`: WebSocket binary messages, for proxies and load
 * balancers that pass WebSocket upgrades and nothing else; every byte then crosses `ws`'s framing and
 * node's JavaScript stream adapter on both ends.
 */
export interface RelayCarrier {
  readonly framing: RelayFraming;
  /** The byte stream HTTP/2 runs on. */
  readonly stream: Duplex;
  readonly open: boolean;
  /** Resolves once the underlying socket has closed. */
  readonly closed: Promise<void>;
  /**
   * Calls `listener` once, synchronously, when the peer is found gone (before the socket is torn
   * down), so pending work fails with the caller's error rather than as a clean end of stream.
   */
  onLost(listener: () => void): void;
  /** Drops the connection now. */
  terminate(): void;
  /**
   * Checks every `intervalMs` that the peer still answers (WebSocket pings, or HTTP/2 PINGs on
   * `session`) and calls `onDead` once two checks in a row went unanswered. Returns a function that stops it.
   */
  heartbeat(session: Http2Session, intervalMs: number, onDead: () => void): () => void;
}

export function webSocketCarrier(ws: WebSocket, log: Logger, context: object): RelayCarrier {
  const lost = lostSignal();
  // Before the byte stream's own listeners: HTTP/2 sessions must be torn down while it is intact.
  ws.once("close", lost.fire);
  const stream = webSocketByteStream(ws);
  stream.on("error", (error) => log.debug({ ...context, err: error }, "relay socket stream error"));
  ws.on("error", (error) => log.debug({ ...context, err: error }, "relay websocket error"));
  const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
  return {
    framing: "websocket",
    stream,
    get open() {
      return ws.readyState === WebSocket.OPEN;
    },
    closed,
    onLost: lost.on,
    terminate: () => ws.terminate(),
    heartbeat: (_session, intervalMs, onDead) => startHeartbeat(ws, intervalMs, onDead),
  };
}

export function directCarrier(socket: Socket, log: Logger, context: object): RelayCarrier {
  socket.setNoDelay(true);
  socket.setTimeout(0);
  const lost = lostSignal();
  // HTTP/2 has no use for half a connection, and an http.Server's sockets allow half-open ones: without
  // this, a peer that goes away would leave our session waiting for the next heartbeat.
  socket.on("end", () => {
    lost.fire();
    socket.destroy();
  });
  socket.once("close", lost.fire);
  socket.on("error", (error) => log.debug({ ...context, err: error }, "relay socket error"));
  const closed = socket.closed ? Promise.resolve() : new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return {
    framing: "direct",
    stream: socket,
    get open() {
      return !socket.destroyed;
    },
    closed,
    onLost: lost.on,
    terminate: () => socket.destroy(),
    heartbeat: (session, intervalMs, onDead) => startSessionHeartbeat(session, intervalMs, onDead),
  };
}

function lostSignal(): { fire(): void; on(listener: () => void): void } {
  const listeners: (() => void)[] = [];
  let fired = false;
  return {
    fire: () => {
      if (fired) return;
      fired = true;
      for (const listener of listeners.splice(0)) listener();
    },
    on: (listener) => {
      if (fired) listener();
      else listeners.push(listener);
    },
  };
}

/** An HTTP/2 PING every `intervalMs`; the peer's HTTP/2 stack answers them, ahead of queued DATA. */
function startSessionHeartbeat(session: Http2Session, intervalMs: number, onDead: () => void): () => void {
  let unanswered = 0;
  const timer = setInterval(() => {
    if (unanswered >= 2) {
      clearInterval(timer);
      onDead();
      return;
    }
    unanswered += 1;
    if (session.destroyed) return;
    session.ping((error) => {
      if (!error) unanswered = 0;
    });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
