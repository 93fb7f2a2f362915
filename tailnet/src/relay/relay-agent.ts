import http from "node:http";
import http2 from "node:http2";
import type { Http2Server, Http2ServerRequest, Http2ServerResponse, ServerHttp2Session } from "node:http2";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocket } from "ws";
import { zeroMask } from "./websocket-stream.ts";
import { TunnelError, silentLogger, type Logger } from "../transport.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { DIRECT_RELAY_PROTOCOL, directCarrier, webSocketCarrier, type RelayCarrier, type RelayFraming } from "./carrier.ts";
import { CONNECTION_WINDOW_BYTES, MAX_CONCURRENT_STREAMS, MAX_SESSION_MEMORY_MB, STREAM_WINDOW_BYTES } from "./http2-settings.ts";

export type RelayAgentState = "connecting" | "connected" | "disconnected" | "unauthorized" | "stopped";

export interface RelayAgentOptions {
  /** http(s):// URL of the relay endpoint (ws(s):// accepted and converted) */
  url: string;
  /**
   * "direct" (default): ask for `Upgrade: kiln-relay-h2` and run HTTP/2 on the socket itself, falling
   * back to WebSocket framing for good when the control plane or a proxy refuses that upgrade.
   * "websocket": WebSocket framing from the start, for networks whose proxies pass nothing else.
   */
  framing?: RelayFraming;
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
  readonly #httpUrl: URL;
  readonly #webSocketUrl: URL;
  /** The URL without credentials, safe to log. */
  readonly #logUrl: string;
  readonly #backoff: BackoffOptions;
  readonly #server: Http2Server;
  readonly #connectedWaiters = new Set<() => void>();
  #state: RelayAgentState = "stopped";
  #running = false;
  #framing: RelayFraming;
  #dial: Dial | undefined;
  #carrier: RelayCarrier | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #failureLogged = false;
  #unauthorizedLogged = false;

  constructor(options: RelayAgentOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.#httpUrl = toHttpUrl(options.url);
    this.#webSocketUrl = new URL(this.#httpUrl);
    this.#webSocketUrl.protocol = this.#httpUrl.protocol === "https:" ? "wss:" : "ws:";
    const logUrl = new URL(this.#httpUrl);
    logUrl.username = "";
    logUrl.password = "";
    this.#logUrl = logUrl.href;
    this.#framing = options.framing === "websocket" ? "websocket" : "direct";
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
    this.#dial?.abort();
    this.#dial = undefined;
    const carrier = this.#carrier;
    if (carrier) {
      carrier.terminate();
      await carrier.closed;
    }
    this.#setState("stopped");
  }

  /** How the current (or next) connection frames HTTP/2. */
  get framing(): RelayFraming {
    return this.#carrier?.framing ?? this.#framing;
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
    const framing = this.#framing;
    const dial =
      framing === "direct"
        ? dialDirect(this.#httpUrl, this.#options.token, this.#log, { url: this.#logUrl })
        : dialWebSocket(this.#webSocketUrl, this.#options.token, this.#log, { url: this.#logUrl });
    this.#dial = dial;
    void dial.result.then((result) => {
      if (this.#dial !== dial || !this.#running) {
        if ("carrier" in result) result.carrier.terminate();
        return;
      }
      this.#dial = undefined;
      if ("carrier" in result) this.#connected(result.carrier);
      else this.#failed(framing, result);
    });
  }

  #connected(carrier: RelayCarrier): void {
    const openedAt = Date.now();
    this.#carrier = carrier;
    this.#failureLogged = false;
    this.#unauthorizedLogged = false;
    const stopServing = this.#serve(carrier);
    this.#log.info({ url: this.#logUrl, framing: carrier.framing }, "relay connected");
    this.#setState("connected");
    carrier.onLost(() => {
      stopServing();
      if (this.#carrier === carrier) this.#carrier = undefined;
      if (!this.#running) return;
      const livedMs = Date.now() - openedAt;
      if (livedMs > STABLE_CONNECTION_MS) this.#attempt = 0;
      this.#log.warn({ url: this.#logUrl, livedMs }, "relay disconnected");
      this.#setState("disconnected");
      this.#scheduleReconnect(backoffDelay(this.#attempt++, this.#backoff));
    });
  }

  #failed(framing: RelayFraming, { status, error }: DialFailure): void {
    if (status === 401) {
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
    if (framing === "direct" && refusesDirectUpgrade(status)) {
      // An older control plane, or a proxy that passes WebSocket upgrades only: frame HTTP/2 in
      // WebSocket messages from now on. (A 5xx is a control plane that is down, not a refusal.)
      this.#framing = "websocket";
      this.#log.info({ url: this.#logUrl, status }, "the direct relay upgrade was refused; using WebSocket framing");
      this.#scheduleReconnect(0);
      return;
    }
    const details = { url: this.#logUrl, framing, status, error: error?.message, attempt: this.#attempt };
    if (this.#failureLogged) {
      this.#log.debug(details, "relay connection failed");
    } else {
      this.#failureLogged = true;
      this.#log.warn(details, "relay connection failed; retrying with backoff");
    }
    this.#setState("disconnected");
    this.#scheduleReconnect(backoffDelay(this.#attempt++, this.#backoff));
  }

  /** Runs an HTTP/2 server session over `carrier`; returns a function that ends it. */
  #serve(carrier: RelayCarrier): () => void {
    const session = openServerSession(this.#server, carrier.stream);
    session.on("connect", () => {
      if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    });
    session.on("error", (error) => this.#log.debug({ err: error }, "relay session error"));
    session.on("close", () => {
      // The byte stream cannot carry a second session; reconnect for a fresh one.
      if (carrier.open) carrier.terminate();
    });
    const stopHeartbeat = carrier.heartbeat(session, PING_INTERVAL_MS, () => {
      this.#log.warn({ url: this.#logUrl }, "relay control plane stopped answering pings");
      carrier.terminate();
    });
    return () => {
      stopHeartbeat();
      // The session does not notice a WebSocket ending by itself; without this its streams hang.
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

function toHttpUrl(raw: string): URL {
  const url = new URL(raw);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  else if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`relay url must be http(s):// or ws(s)://, got ${url.protocol}`);
  }
  return url;
}

type DialFailure = { status?: number; error?: Error };
type DialResult = { carrier: RelayCarrier } | DialFailure;

/** One connection attempt; `abort` ends it (its result is then ignored). */
interface Dial {
  result: Promise<DialResult>;
  abort(): void;
}

/**
 * Answers that mean the direct upgrade is not understood on the way (an older control plane answers
 * 400, a proxy 400, 404, 405, 426 or 501, or a 101 for another protocol); a 5xx gateway error or a
 * 429 is a busy or absent control plane and is retried as it is.
 */
function refusesDirectUpgrade(status: number | undefined): boolean {
  if (status === undefined) return false;
  return status === 101 || status === 501 || (status >= 400 && status < 500 && status !== 401 && status !== 408 && status !== 429);
}

/** `GET` with `Upgrade: kiln-relay-h2`; after the 101 the socket itself carries HTTP/2. */
function dialDirect(url: URL, token: string, log: Logger, context: object): Dial {
  const request = (url.protocol === "https:" ? https : http).request(url, {
    agent: false,
    headers: { connection: "Upgrade", upgrade: DIRECT_RELAY_PROTOCOL, authorization: `Bearer ${token}` },
  });
  const result = new Promise<DialResult>((resolve) => {
    const timer = setTimeout(() => request.destroy(new Error(`no answer to the relay upgrade within ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
    const settle = (outcome: DialResult) => {
      clearTimeout(timer);
      resolve(outcome);
    };
    request.on("upgrade", (response, socket: Socket, head: Buffer) => {
      if (response.headers.upgrade?.trim().toLowerCase() !== DIRECT_RELAY_PROTOCOL) {
        socket.destroy();
        settle({ status: response.statusCode });
        return;
      }
      // The control plane's HTTP/2 preface may have come in the same read as the 101.
      if (head.length > 0) socket.unshift(head);
      settle({ carrier: directCarrier(socket, log, context) });
    });
    request.on("response", (response) => {
      response.resume();
      settle({ status: response.statusCode });
    });
    request.on("error", (error) => settle({ error }));
    request.end();
  });
  return { result, abort: () => request.destroy() };
}

function dialWebSocket(url: URL, token: string, log: Logger, context: object): Dial {
  const ws = new WebSocket(url, {
    headers: { authorization: `Bearer ${token}` },
    perMessageDeflate: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    generateMask: zeroMask,
  });
  const result = new Promise<DialResult>((resolve) => {
    let status: number | undefined;
    let failure: Error | undefined;
    ws.on("unexpected-response", (_request, response) => {
      status = response.statusCode;
      response.resume();
      ws.terminate();
    });
    ws.on("error", (error) => {
      failure ??= error;
    });
    ws.once("open", () => resolve({ carrier: webSocketCarrier(ws, log, context) }));
    // After an open this is the carrier's business; the promise has settled.
    ws.once("close", () => resolve({ status, error: failure }));
  });
  return { result, abort: () => ws.terminate() };
}
