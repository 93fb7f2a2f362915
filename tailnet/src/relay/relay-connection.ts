import http2 from "node:http2";
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, IncomingHttpStatusHeader, OutgoingHttpHeaders } from "node:http2";
import { pipeline, type Duplex } from "node:stream";
import type { RelayCarrier } from "./carrier.ts";
import { TunnelError, type AgentConnection, type AgentFetchInit, type Logger } from "../transport.ts";
import { abortReason } from "./abort-reason.ts";
import { CONNECTION_WINDOW_BYTES, MAX_CONCURRENT_STREAMS, MAX_SESSION_MEMORY_MB, STREAM_WINDOW_BYTES } from "./http2-settings.ts";

const { NGHTTP2_CANCEL } = http2.constants;

const NULL_BODY_STATUSES = new Set([204, 205, 304]);

/** HTTP/2 forbids connection-specific headers; node throws on them, so drop them instead. */
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "http2-settings"]);

export interface RelayConnectionOptions {
  agentId: string;
  carrier: RelayCarrier;
  log: Logger;
  pingIntervalMs: number;
  /** Called once, as soon as the connection is known to be dead. */
  onClose(connection: RelayConnection): void;
}

/**
 * The control plane's end of one agent's relay connection: the HTTP/2 client session over its
 * carrier (the upgraded socket, or a WebSocket). When the carrier or the session dies, everything
 * pending on it fails at once with `connection_lost`.
 */
export class RelayConnection implements AgentConnection {
  readonly agentId: string;
  readonly #carrier: RelayCarrier;
  readonly #log: Logger;
  readonly #onClose: (connection: RelayConnection) => void;
  readonly #stopHeartbeat: () => void;
  readonly #pending = new Set<(error: TunnelError) => void>();
  readonly #session: ClientHttp2Session;
  #lost: TunnelError | undefined;

  constructor(options: RelayConnectionOptions) {
    this.agentId = options.agentId;
    this.#carrier = options.carrier;
    this.#log = options.log;
    this.#onClose = options.onClose;
    this.#session = this.#startSession();
    this.#stopHeartbeat = options.carrier.heartbeat(this.#session, options.pingIntervalMs, () => {
      this.#log.warn({ agentId: this.agentId }, "relay peer stopped answering pings");
      this.terminate();
    });
    // Last: a carrier already gone calls back at once, and #fail needs the session and heartbeat.
    options.carrier.onLost(() => {
      this.#log.debug({ agentId: this.agentId, framing: options.carrier.framing }, "relay socket closed");
      this.#fail();
    });
  }

  /** How this connection's HTTP/2 travels: the upgraded socket itself, or WebSocket messages. */
  get framing(): RelayCarrier["framing"] {
    return this.#carrier.framing;
  }

  get closed(): boolean {
    return this.#lost !== undefined || !this.#carrier.open;
  }

  /** Drops the connection now; pending work fails synchronously. */
  terminate(): void {
    this.#fail();
    this.#carrier.terminate();
  }

  /** Resolves once the underlying socket has closed. */
  whenSocketClosed(): Promise<void> {
    return this.#carrier.closed;
  }

  async fetch(path: string, init: AgentFetchInit = {}): Promise<Response> {
    const { signal, body } = init;
    signal?.throwIfAborted();
    const method = (init.method ?? "GET").toUpperCase();
    const headers = requestHeaders(method, path, init.headers);
    if ((typeof body === "string" || body instanceof Uint8Array) && headers["content-length"] === undefined) {
      headers["content-length"] = Buffer.byteLength(body);
    }
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
        // Errors the response body too, if it is already streaming.
        stream.destroy(reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });

      stream.on("error", (error) => {
        this.#log.debug({ agentId: this.agentId, path, err: error }, "relay request stream error");
        fail(this.#streamError(path, error));
      });
      stream.once("close", () => {
        signal?.removeEventListener("abort", onAbort);
        if (!settled) fail(this.#streamError(path, undefined));
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
        const responseBody = responseBodyOf(stream, signal, (error) => this.#streamError(path, error));
        resolve(new Response(responseBody, { status, headers: webHeaders }));
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
    const stream = this.#request(requestHeaders("POST", path, headers), false);

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

      // Stays attached after resolving: a caller that forgets its own error listener
      // must not crash the control plane when a workspace drops.
      stream.on("error", (error) => {
        this.#log.debug({ agentId: this.agentId, path, err: error }, "relay stream error");
        fail(this.#streamError(path, error));
      });
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
    const session = this.#session;
    return new Promise<number>((resolve, reject) => {
      const untrack = this.#track(reject);
      const answered = session.ping((error, durationMs) => {
        untrack();
        if (error) reject(this.#lost || session.destroyed ? this.#connectionLost() : error);
        else resolve(durationMs);
      });
      if (!answered) {
        untrack();
        reject(new TunnelError("timeout", `too many unanswered pings to workspace agent ${this.agentId}`));
      }
    });
  }

  #fail(): void {
    if (this.#lost) return;
    const error = this.#connectionLost();
    this.#lost = error;
    this.#stopHeartbeat();
    for (const reject of this.#pending) reject(error);
    this.#pending.clear();
    // Destroys every open stream with `error`, so streaming bodies fail too instead of hanging.
    this.#session.destroy(error);
    this.#onClose(this);
  }

  #connectionLost(): TunnelError {
    return this.#lost ?? new TunnelError("connection_lost", `connection to workspace agent ${this.agentId} lost`);
  }

  #track(reject: (error: TunnelError) => void): () => void {
    this.#pending.add(reject);
    return () => this.#pending.delete(reject);
  }

  #startSession(): ClientHttp2Session {
    const stream = this.#carrier.stream;
    const session = http2.connect("http://agent", {
      createConnection: () => stream,
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false },
      peerMaxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    session.on("connect", () => {
      if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    });
    session.on("error", (error) => this.#log.debug({ agentId: this.agentId, err: error }, "relay session error"));
    session.on("close", () => {
      if (this.#lost) return;
      // The byte stream cannot carry a second session, so the agent must reconnect.
      this.#log.warn({ agentId: this.agentId }, "relay session closed by peer");
      this.terminate();
    });
    return session;
  }

  #request(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    if (this.#lost) throw this.#lost;
    const session = this.#session;
    try {
      return resetOnDestroy(session.request(headers, { endStream }));
    } catch (error) {
      if (this.#lost || session.closed || session.destroyed) throw this.#connectionLost();
      throw error;
    }
  }

  #streamError(path: string, error: unknown): Error {
    if (error instanceof TunnelError) return error;
    if (this.#lost || this.#session.destroyed) return this.#connectionLost();
    const detail = error instanceof Error ? error.message : "stream closed before response headers";
    return new TunnelError("stream_refused", `request ${path} to workspace agent ${this.agentId} failed: ${detail}`);
  }
}

/**
 * A plain `destroy()` resets the stream with NO_ERROR, and node's HTTP/2 server does not
 * close a response that is blocked on flow control for that: the daemon's handler would
 * keep running. Resetting with CANCEL first always reaches it.
 */
export function resetOnDestroy(stream: ClientHttp2Stream): ClientHttp2Stream {
  const destroy = stream.destroy.bind(stream);
  stream.destroy = (error?: Error) => {
    if (!stream.closed) stream.close(NGHTTP2_CANCEL);
    return destroy(error);
  };
  return stream;
}

export function requestHeaders(method: string, path: string, headers: Record<string, string> = {}): OutgoingHttpHeaders {
  if (!path.startsWith("/")) throw new TypeError(`path must start with "/", got ${JSON.stringify(path)}`);
  const result: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    const lowerName = name.toLowerCase();
    if (CONNECTION_HEADERS.has(lowerName) || lowerName.startsWith(":")) continue;
    if (lowerName === "te" && value.toLowerCase() !== "trailers") continue;
    result[lowerName] = value;
  }
  result[":method"] = method;
  result[":path"] = path;
  return result;
}

export function toWebHeaders(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): Headers {
  const result = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) {
      for (const item of value) result.append(name, item);
    } else {
      result.append(name, String(value));
    }
  }
  return result;
}

/** What the response body buffers before it stops reading the HTTP/2 stream (flow control does the rest). */
const BODY_HIGH_WATER_MARK_BYTES = 64 * 1024;

/**
 * The response side of an HTTP/2 stream as a web body, read straight from the stream's events. (Not
 * `Readable.toWeb`: on the duplex, node reports a premature close when the peer finishes before our
 * request side has emitted 'finish', and its `finished()` takes an HTTP/2 stream whose END_STREAM has
 * arrived for closed while data is still unread. A `PassThrough` in front avoided both but cost a
 * second node stream and a pipe per request.) A consumer that cancels the body cancels the stream.
 */
export function responseBodyOf(stream: ClientHttp2Stream, signal: AbortSignal | undefined, streamError: (error: Error | undefined) => Error): ReadableStream<Uint8Array> {
  let settled = false;
  const cancelStream = () => {
    if (!stream.readableEnded && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const fail = (error: Error) => {
          if (settled) return;
          settled = true;
          controller.error(error);
          cancelStream();
        };
        stream.on("data", (chunk: Buffer) => {
          if (settled) return;
          // As it is, a view into one of the session's socket reads (node never reuses those). Not a
          // copy as Readable.toWeb makes: a copy doubles what each byte allocates, and the major GCs
          // that external memory triggers cost 10-15 % of a 64 MiB body's throughput.
          controller.enqueue(chunk);
          if ((controller.desiredSize ?? 0) <= 0) stream.pause();
        });
        stream.once("end", () => {
          if (settled) return;
          settled = true;
          controller.close();
        });
        stream.on("error", (error) => fail(streamError(error)));
        stream.once("close", () => {
          if (!stream.readableEnded) fail(streamError(undefined));
        });
        signal?.addEventListener("abort", () => fail(abortReason(signal)), { once: true });
      },
      pull() {
        if (!settled) stream.resume();
      },
      cancel() {
        settled = true;
        cancelStream();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: BODY_HIGH_WATER_MARK_BYTES }),
  );
}
