import http2 from "node:http2";
import type { ClientHttp2Session, ClientHttp2Stream, OutgoingHttpHeaders } from "node:http2";
import type net from "node:net";
import { pipeline, type Duplex } from "node:stream";
import { TunnelError, silentLogger, type AgentConnection, type AgentFetchInit, type DialOptions, type Logger, type Transport } from "../transport.ts";
import { abortReason } from "../relay/abort-reason.ts";
import { CONNECTION_WINDOW_BYTES, MAX_CONCURRENT_STREAMS, MAX_SESSION_MEMORY_MB, STREAM_WINDOW_BYTES } from "../relay/http2-settings.ts";
import { requestHeaders, resetOnDestroy, responseBodyOf, toWebHeaders } from "../relay/relay-connection.ts";
import { socks5Connect } from "../tailscale/socks5.ts";
import { TAILNET_CREDENTIAL_HEADER } from "./credential.ts";

const { NGHTTP2_CANCEL } = http2.constants;
const NULL_BODY_STATUSES = new Set([204, 205, 304]);
/**
 * A peer that vanishes (its tailscaled killed, the workspace gone) never resets the TCP connection: the userspace
 * netstack just stops answering. An HTTP/2 PING this often, two left unanswered, ends the session.
 */
const KEEPALIVE_MS = 10_000;

/** Where a daemon listens on the tailnet, and the credential it expects from this control plane. */
export interface TailnetEndpoint {
  address: string;
  port: number;
  credential: string;
}

export interface TailnetTransportOptions {
  /** The control plane's tailscaled SOCKS5 proxy on loopback. */
  socks5: { host: string; port: number };
  log?: Logger;
}

/**
 * The control plane's side of the tailnet: dials each daemon's tailnet address through its own
 * userspace tailscaled (SOCKS5) and speaks HTTP/2 (h2c) over that TCP connection.
 */
export class TailnetTransport implements Transport {
  readonly kind = "tailnet" as const;
  readonly #options: TailnetTransportOptions;
  readonly #log: Logger;
  readonly #endpoints = new Map<string, TailnetEndpoint>();
  readonly #connections = new Map<string, Promise<TailnetConnection>>();
  readonly #waiters = new Map<string, Set<() => void>>();
  #closed = false;

  constructor(options: TailnetTransportOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
  }

  /** Records (or replaces) a daemon's tailnet endpoint, as it reports it over its control channel. */
  register(agentId: string, endpoint: TailnetEndpoint): void {
    const previous = this.#endpoints.get(agentId);
    this.#endpoints.set(agentId, endpoint);
    if (previous && (previous.address !== endpoint.address || previous.port !== endpoint.port || previous.credential !== endpoint.credential)) this.#drop(agentId);
    for (const wake of this.#waiters.get(agentId) ?? []) wake();
  }

  unregister(agentId: string): void {
    this.#endpoints.delete(agentId);
    this.#drop(agentId);
  }

  endpoint(agentId: string): TailnetEndpoint | undefined {
    return this.#endpoints.get(agentId);
  }

  isConnected(agentId: string): boolean {
    return this.#endpoints.has(agentId);
  }

  async dial(agentId: string, options: DialOptions = {}): Promise<AgentConnection> {
    if (this.#closed) throw new TunnelError("agent_unreachable", "tailnet transport is closed");
    const timeoutMs = options.timeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    await this.#waitForEndpoint(agentId, timeoutMs, options.signal);
    const existing = this.#connections.get(agentId);
    if (existing) {
      const connection = await existing.catch(() => undefined);
      if (connection && !connection.closed) return connection;
      if (this.#connections.get(agentId) === existing) this.#connections.delete(agentId);
    }
    const endpoint = this.#endpoints.get(agentId);
    if (!endpoint) throw new TunnelError("agent_unreachable", `workspace agent ${agentId} has no tailnet endpoint`);
    const connecting = this.#connect(agentId, endpoint, deadline);
    this.#connections.set(agentId, connecting);
    try {
      return await connecting;
    } catch (error) {
      if (this.#connections.get(agentId) === connecting) this.#connections.delete(agentId);
      const detail = error instanceof Error ? error.message : String(error);
      throw new TunnelError("agent_unreachable", `workspace agent ${agentId} unreachable over the tailnet at ${endpoint.address}:${endpoint.port}: ${detail}`);
    }
  }

  /**
   * Connects and waits for the daemon's HTTP/2 SETTINGS. The first TCP connection to a peer whose WireGuard
   * handshake has not finished can be reset by the peer's netstack, so that is retried until the deadline.
   */
  async #connect(agentId: string, endpoint: TailnetEndpoint, deadline: number): Promise<TailnetConnection> {
    for (let attempt = 1; ; attempt++) {
      const socket = await socks5Connect(this.#options.socks5, { host: endpoint.address, port: endpoint.port }, Math.max(1, deadline - Date.now()));
      const connection = new TailnetConnection({
        agentId,
        socket,
        credential: endpoint.credential,
        log: this.#log,
        onClose: (closed) => {
          void this.#connections.get(agentId)?.then(
            (current) => {
              if (current === closed) this.#connections.delete(agentId);
            },
            () => undefined,
          );
        },
      });
      try {
        await connection.ready(Math.max(1, deadline - Date.now()));
        return connection;
      } catch (error) {
        connection.terminate();
        if (Date.now() + 200 >= deadline) throw error;
        this.#log.debug({ agentId, attempt, err: error }, "tailnet connection reset before the daemon answered; retrying");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const agentId of [...this.#connections.keys()]) this.#drop(agentId);
    this.#endpoints.clear();
  }

  #drop(agentId: string): void {
    const connection = this.#connections.get(agentId);
    this.#connections.delete(agentId);
    void connection?.then((open) => open.terminate()).catch(() => undefined);
  }

  async #waitForEndpoint(agentId: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#endpoints.has(agentId)) return;
    await new Promise<void>((resolve, reject) => {
      const waiters = this.#waiters.get(agentId) ?? new Set();
      this.#waiters.set(agentId, waiters);
      const done = (error?: Error) => {
        clearTimeout(timer);
        waiters.delete(wake);
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
        else resolve();
      };
      const wake = () => done();
      const onAbort = () => done(abortReason(signal));
      const timer = setTimeout(() => done(new TunnelError("agent_unreachable", `workspace agent ${agentId} has no tailnet endpoint after ${timeoutMs} ms`)), timeoutMs);
      waiters.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

interface TailnetConnectionOptions {
  agentId: string;
  socket: net.Socket;
  credential: string;
  log: Logger;
  onClose(connection: TailnetConnection): void;
}

/** One HTTP/2 session to a daemon over a tailnet TCP connection; when it dies, everything pending fails with `connection_lost`. */
class TailnetConnection implements AgentConnection {
  readonly agentId: string;
  readonly #session: ClientHttp2Session;
  readonly #credential: string;
  readonly #log: Logger;
  readonly #pending = new Set<(error: TunnelError) => void>();
  readonly #onClose: (connection: TailnetConnection) => void;
  #lost: TunnelError | undefined;
  readonly #keepalive: NodeJS.Timeout;
  #unanswered = 0;

  constructor(options: TailnetConnectionOptions) {
    this.agentId = options.agentId;
    this.#credential = options.credential;
    this.#log = options.log;
    this.#onClose = options.onClose;
    const socket = options.socket;
    this.#session = http2.connect("http://agent", {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      peerMaxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    this.#session.on("connect", () => this.#session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    this.#session.on("error", (error) => this.#log.debug({ agentId: this.agentId, err: error }, "tailnet session error"));
    this.#session.on("close", () => this.#fail());
    socket.on("close", () => this.#fail());
    this.#keepalive = setInterval(() => this.#probe(), KEEPALIVE_MS).unref();
  }

  #probe(): void {
    if (this.#unanswered >= 2) {
      this.#log.warn({ agentId: this.agentId }, "tailnet connection to the workspace agent stopped answering pings; closing it");
      this.#fail();
      return;
    }
    this.#unanswered += 1;
    try {
      this.#session.ping((error) => {
        if (!error) this.#unanswered = 0;
      });
    } catch {
      // the session is closing; its close handler ends the connection
    }
  }

  get closed(): boolean {
    return this.#lost !== undefined || this.#session.closed || this.#session.destroyed;
  }

  /** Resolves once the daemon's HTTP/2 SETTINGS arrive; rejects when the connection dies first or timeoutMs passes. */
  ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#lost) return reject(this.#lost);
      const timer = setTimeout(() => done(new TunnelError("timeout", `workspace agent ${this.agentId} did not answer within ${timeoutMs} ms`)), timeoutMs);
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.#pending.delete(onLost);
        this.#session.off("remoteSettings", onSettings);
        if (error) reject(error);
        else resolve();
      };
      const onLost = (error: TunnelError) => done(error);
      const onSettings = () => done();
      this.#pending.add(onLost);
      this.#session.once("remoteSettings", onSettings);
    });
  }

  terminate(): void {
    this.#fail();
  }

  async fetch(path: string, init: AgentFetchInit = {}): Promise<Response> {
    const { signal, body } = init;
    signal?.throwIfAborted();
    const method = (init.method ?? "GET").toUpperCase();
    const headers = this.#headers(method, path, init.headers);
    if ((typeof body === "string" || body instanceof Uint8Array) && headers["content-length"] === undefined) headers["content-length"] = Buffer.byteLength(body);
    const stream = this.#request(headers, body === undefined);

    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        untrack();
        stream.close(NGHTTP2_CANCEL);
        reject(error);
      };
      const untrack = this.#track(fail);
      const onAbort = () => {
        const reason = abortReason(signal);
        fail(reason);
        stream.destroy(reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      stream.on("error", (error) => fail(this.#streamError(path, error)));
      stream.once("close", () => {
        signal?.removeEventListener("abort", onAbort);
        fail(this.#streamError(path, undefined));
      });
      stream.once("response", (responseHeaders) => {
        if (settled) return;
        settled = true;
        untrack();
        const status = Number(responseHeaders[":status"]);
        const webHeaders = toWebHeaders(responseHeaders);
        if (method === "HEAD" || NULL_BODY_STATUSES.has(status)) {
          stream.resume();
          resolve(new Response(null, { status, headers: webHeaders }));
          return;
        }
        resolve(new Response(responseBodyOf(stream, signal, (error) => this.#streamError(path, error)), { status, headers: webHeaders }));
      });
      if (typeof body === "string" || body instanceof Uint8Array) {
        stream.end(body);
      } else if (body !== undefined) {
        pipeline(body, stream, (error) => {
          if (error) fail(this.#streamError(path, error));
        });
      }
    });
  }

  async openStream(path: string, headers: Record<string, string> = {}): Promise<Duplex> {
    const stream = this.#request(this.#headers("POST", path, headers), false);
    return new Promise<Duplex>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        untrack();
        stream.close(NGHTTP2_CANCEL);
        reject(error);
      };
      const untrack = this.#track(fail);
      stream.on("error", (error) => fail(this.#streamError(path, error)));
      stream.once("close", () => fail(this.#streamError(path, undefined)));
      stream.once("response", (responseHeaders) => {
        if (settled) return;
        const status = Number(responseHeaders[":status"]);
        if (status < 200 || status > 299) {
          fail(new TunnelError("stream_refused", `workspace agent ${this.agentId} refused stream ${path} with status ${status}`, status));
          return;
        }
        settled = true;
        untrack();
        resolve(stream);
      });
    });
  }

  async ping(): Promise<number> {
    if (this.#lost) throw this.#lost;
    return new Promise<number>((resolve, reject) => {
      const untrack = this.#track(reject);
      const answered = this.#session.ping((error, durationMs) => {
        untrack();
        if (error) reject(this.#lost ?? error);
        else resolve(durationMs);
      });
      if (!answered) {
        untrack();
        reject(new TunnelError("timeout", `too many unanswered pings to workspace agent ${this.agentId}`));
      }
    });
  }

  #headers(method: string, path: string, headers: Record<string, string> | undefined): OutgoingHttpHeaders {
    return { ...requestHeaders(method, path, headers), [TAILNET_CREDENTIAL_HEADER]: this.#credential };
  }

  #request(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    if (this.#lost) throw this.#lost;
    try {
      return resetOnDestroy(this.#session.request(headers, { endStream }));
    } catch (error) {
      if (this.closed) throw this.#connectionLost();
      throw error;
    }
  }

  #fail(): void {
    if (this.#lost) return;
    clearInterval(this.#keepalive);
    const error = this.#connectionLost();
    this.#lost = error;
    for (const reject of this.#pending) reject(error);
    this.#pending.clear();
    this.#session.destroy(error);
    this.#onClose(this);
  }

  #connectionLost(): TunnelError {
    return this.#lost ?? new TunnelError("connection_lost", `tailnet connection to workspace agent ${this.agentId} lost`);
  }

  #track(reject: (error: TunnelError) => void): () => void {
    this.#pending.add(reject);
    return () => this.#pending.delete(reject);
  }

  #streamError(path: string, error: unknown): Error {
    if (error instanceof TunnelError) return error;
    if (this.#lost || this.#session.destroyed) return this.#connectionLost();
    const detail = error instanceof Error ? error.message : "stream closed before response headers";
    return new TunnelError("stream_refused", `request ${path} to workspace agent ${this.agentId} failed: ${detail}`);
  }
}
