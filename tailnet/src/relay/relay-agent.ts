import http2 from "node:http2";
import type { Http2Server, Http2ServerRequest, Http2ServerResponse, ServerHttp2Session } from "node:http2";
import type { Duplex } from "node:stream";
import { WebSocket } from "ws";
import { webSocketByteStream, zeroMask } from "./websocket-stream.ts";
import { TunnelError, silentLogger, type Logger } from "../transport.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { startHeartbeat } from "./heartbeat.ts";
import { CONNECTION_WINDOW_BYTES, MAX_CONCURRENT_STREAMS, MAX_SESSION_MEMORY_MB, STREAM_WINDOW_BYTES } from "./http2-settings.ts";

export type RelayAgentState = "connecting" | "connected" | "disconnected" | "unauthorized" | "stopped";

export interface RelayAgentOptions {
  /** ws:// or wss:// URL of the relay endpoint (http(s):// accepted and converted) */
  url: string;
  token: string;
  /** node http2 compat request handler, e.g. from @hono/node-server's getRequestListener */
  handler: (req: Http2ServerRequest, res: Http2ServerResponse) => void;
  log?: Logger;
  /** default 250ms .. 10s, exponential with jitter, reset after a connection lived > 10s */
  backoff?: { initialMs?: number; maxMs?: number };
  onStateChange?(state: Exclude<RelayAgentState, "stopped">): void;
}

/** The agent pings too, so it notices a control plane that vanished without closing the socket. */
const PING_INTERVAL_MS = 15_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** A connection that lived this long resets the backoff; a shorter one counts as a failed attempt. */
const STABLE_CONNECTION_MS = 10_000;

/**
 * The daemon side of the relay: dials the control plane, keeps reconnecting until stopped,
 * and serves `handler` as an HTTP/2 server over each WebSocket it holds.
 */
export class RelayAgent {
  readonly #options: RelayAgentOptions;
  readonly #log: Logger;
  readonly #url: string;
  /** The URL without credentials, safe to log. */
  readonly #logUrl: string;
  readonly #backoff: BackoffOptions;
  readonly #server: Http2Server;
  readonly #connectedWaiters = new Set<() => void>();
  #state: RelayAgentState = "stopped";
  #running = false;
  #ws: WebSocket | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #failureLogged = false;
  #unauthorizedLogged = false;

  constructor(options: RelayAgentOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    const url = toWebSocketUrl(options.url);
    this.#url = url.href;
    url.username = "";
    url.password = "";
    this.#logUrl = url.href;
    this.#backoff = { initialMs: options.backoff?.initialMs ?? 250, maxMs: options.backoff?.maxMs ?? 10_000 };
    this.#server = http2.createServer(
      {
        settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
        maxSessionMemory: MAX_SESSION_MEMORY_MB,
      },
      options.handler,
    );
    this.#server.on("sessionError", (error) => this.#log.debug({ err: error }, "relay session error"));
  }

  get state(): RelayAgentState {
    return this.#state;
  }

  /** Dials and keeps reconnecting forever until stop(). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#reconnectTimer);
    const ws = this.#ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((resolve) => ws.once("close", resolve));
      ws.terminate();
      await closed;
    }
    this.#setState("stopped");
  }

  /** Resolves when connected (for tests/startup). */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.#state === "connected") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onConnected = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#connectedWaiters.delete(onConnected);
        reject(new TunnelError("timeout", `relay agent did not connect within ${timeoutMs} ms (state: ${this.#state})`));
      }, timeoutMs);
      this.#connectedWaiters.add(onConnected);
    });
  }

  #connect(): void {
    if (!this.#running) return;
    // An unauthorized agent keeps that state while it retries, so watchers see one change.
    if (this.#state !== "unauthorized") this.#setState("connecting");
    const ws = new WebSocket(this.#url, {
      headers: { authorization: `Bearer ${this.#options.token}` },
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      generateMask: zeroMask,
    });
    this.#ws = ws;
    let refusedStatus: number | undefined;
    let failure: Error | undefined;
    let openedAt: number | undefined;
    let stopServing: (() => void) | undefined;

    ws.on("unexpected-response", (_request, response) => {
      refusedStatus = response.statusCode;
      response.resume();
      ws.terminate();
    });
    ws.on("error", (error) => {
      failure ??= error;
    });
    ws.on("open", () => {
      openedAt = Date.now();
      this.#failureLogged = false;
      this.#unauthorizedLogged = false;
      stopServing = this.#serve(ws);
      this.#log.info({ url: this.#logUrl }, "relay connected");
      this.#setState("connected");
    });
    ws.on("close", (code) => {
      stopServing?.();
      if (this.#ws === ws) this.#ws = undefined;
      if (!this.#running) return;

      if (openedAt !== undefined) {
        const livedMs = Date.now() - openedAt;
        if (livedMs > STABLE_CONNECTION_MS) this.#attempt = 0;
        this.#log.warn({ url: this.#logUrl, code, livedMs }, "relay disconnected");
        this.#setState("disconnected");
        this.#scheduleReconnect(backoffDelay(this.#attempt++, this.#backoff));
        return;
      }

      if (refusedStatus === 401) {
        if (!this.#unauthorizedLogged) {
          this.#unauthorizedLogged = true;
          this.#log.error(
            { url: this.#logUrl, status: 401, retryMs: this.#backoff.maxMs },
            "relay refused the agent token (401); retrying until the token is accepted",
          );
        }
        this.#setState("unauthorized");
        this.#scheduleReconnect(this.#backoff.maxMs);
        return;
      }

      const details = { url: this.#logUrl, status: refusedStatus, error: failure?.message, attempt: this.#attempt };
      if (this.#failureLogged) {
        this.#log.debug(details, "relay connection failed");
      } else {
        this.#failureLogged = true;
        this.#log.warn(details, "relay connection failed; retrying with backoff");
      }
      this.#setState("disconnected");
      this.#scheduleReconnect(backoffDelay(this.#attempt++, this.#backoff));
    });
  }

  /** Runs an HTTP/2 server session over the open `ws`; returns a function that ends it. */
  #serve(ws: WebSocket): () => void {
    const duplex = webSocketByteStream(ws);
    duplex.on("error", (error) => this.#log.debug({ err: error }, "relay socket stream error"));
    const session = openServerSession(this.#server, duplex);
    session.on("connect", () => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    session.on("error", (error) => this.#log.debug({ err: error }, "relay session error"));
    session.on("close", () => {
      // The byte stream cannot carry a second session; reconnect for a fresh one.
      if (ws.readyState === WebSocket.OPEN) ws.terminate();
    });
    const stopHeartbeat = startHeartbeat(ws, PING_INTERVAL_MS, () => {
      this.#log.warn({ url: this.#logUrl }, "relay control plane stopped answering pings");
      ws.terminate();
    });
    return () => {
      stopHeartbeat();
      // The session does not notice the WebSocket ending by itself; without this its streams hang.
      session.destroy();
    };
  }

  #scheduleReconnect(delayMs: number): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delayMs);
  }

  #setState(state: RelayAgentState): void {
    if (this.#state === state) return;
    this.#state = state;
    if (state === "stopped") return;
    this.#options.onStateChange?.(state);
    if (state === "connected") {
      for (const resolve of this.#connectedWaiters) resolve();
      this.#connectedWaiters.clear();
    }
  }
}

/** Hands `socket` to the HTTP/2 server, which creates its session synchronously. */
function openServerSession(server: Http2Server, socket: Duplex): ServerHttp2Session {
  const sessions: ServerHttp2Session[] = [];
  const capture = (session: ServerHttp2Session) => sessions.push(session);
  server.once("session", capture);
  server.emit("connection", socket);
  server.off("session", capture);
  const [session] = sessions;
  if (!session) throw new Error("http2 server created no session for the relay socket");
  return session;
}

function toWebSocketUrl(raw: string): URL {
  const url = new URL(raw);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`relay url must be ws(s):// or http(s)://, got ${url.protocol}`);
  }
  return url;
}
