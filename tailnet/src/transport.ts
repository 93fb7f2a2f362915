import type { Duplex } from "node:stream";

/** The pino-compatible subset the transport logs through. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AgentFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | NodeJS.ReadableStream;
  signal?: AbortSignal;
}

export interface AgentConnection {
  readonly agentId: string;
  /** fetch-like request to the daemon's HTTP API over the tunnel; resolves to a standard web Response whose body streams. */
  fetch(path: string, init?: AgentFetchInit): Promise<Response>;
  /** Open a bidirectional byte stream to `path` on the daemon (an HTTP/2 POST whose request and response bodies both stream). Resolves once response headers arrive with 2xx; rejects with TunnelError otherwise. */
  openStream(path: string, headers?: Record<string, string>): Promise<Duplex>;
  /** Round-trip time in ms (HTTP/2 PING). */
  ping(): Promise<number>;
  readonly closed: boolean;
}

export interface DialOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface Transport {
  readonly kind: "relay" | "tailnet";
  /** A live connection to the agent; waits up to timeoutMs (default 5000) for an agent that is (re)connecting, then rejects with TunnelError code "agent_unreachable". */
  dial(agentId: string, options?: DialOptions): Promise<AgentConnection>;
  isConnected(agentId: string): boolean;
  close(): Promise<void>;
}

export type TunnelErrorCode = "agent_unreachable" | "connection_lost" | "stream_refused" | "timeout";

export class TunnelError extends Error {
  override readonly name = "TunnelError";

  constructor(
    readonly code: TunnelErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
