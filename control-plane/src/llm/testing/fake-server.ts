import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { emptyUsage, type LlmUsage, type ProviderConfig, type ProviderType } from "../types.ts";

/** One scripted model turn, in provider-neutral terms; each fake renders it in its provider's wire format. */
export type FakeTurn =
  | {
      type: "respond";
      /** One string is one chunk; an array is streamed chunk by chunk. */
      text?: string | string[];
      reasoning?: string;
      /** Signature sent after the reasoning (Anthropic, Bedrock) or as Gemini's thought signature; generated when omitted. */
      reasoningSignature?: string;
      /** Arguments are streamed as several partial JSON chunks where the provider streams them. */
      toolCalls?: { id?: string; name: string; input: unknown }[];
      usage?: Partial<LlmUsage>;
      /** Pause between streamed frames. */
      delayMs?: number;
      stopReason?: "stop" | "length";
      /** Instead of finishing, the stream ends with the provider's in-stream error event (e.g. overloaded mid-response). */
      streamError?: { status: number; message?: string };
    }
  | { type: "error"; status: number; message?: string }
  /** Accepts the request and never answers until the client goes away (for interrupt tests). */
  | { type: "hang" };

export type FakeRespondTurn = Extract<FakeTurn, { type: "respond" }>;

export interface FakeRequest {
  method: string;
  /** Path with query string, as the SDK sent it. */
  path: string;
  /** Parsed JSON body. Loosely typed on purpose: tests reach into provider-specific shapes. */
  body: any;
  headers: Record<string, string>;
  /** Set when the client went away before the response was complete (an abort reached the wire). */
  closedEarly: boolean;
}

export type FakeResponder = (request: FakeRequest, index: number) => FakeTurn;

export interface FakeLlmServer {
  readonly provider: ProviderType;
  /** Base URL to give the SDK (what `config.baseUrl` holds). */
  readonly url: string;
  /** A provider config pointing at this server, with fake credentials. */
  readonly config: ProviderConfig;
  /** Every request received, in order. */
  readonly requests: FakeRequest[];
  /** Queues turns; each request takes the next one. Queued turns win over the responder. */
  enqueue(...turns: FakeTurn[]): void;
  /** Answers requests when the queue is empty. */
  setResponder(responder: FakeResponder | undefined): void;
  close(): Promise<void>;
}

/** How one provider's wire format looks to the shared server. */
export interface FakeProtocol {
  readonly transport: "http1" | "http2";
  /** Whether the request hits the provider's streaming endpoint; anything else gets a 404 in the provider's error shape. */
  matches(request: FakeRequest): boolean;
  stream(turn: FakeRespondTurn, request: FakeRequest): { headers: Record<string, string>; frames: (string | Uint8Array)[] };
  error(status: number, message: string): { headers: Record<string, string>; body: string };
}

export interface FakeServerOptions {
  provider: ProviderType;
  protocol: FakeProtocol;
  /** Path appended to the origin to form the SDK base URL, e.g. "/v1". */
  basePath?: string;
  config: (url: string) => ProviderConfig;
  port?: number;
}

type IncomingRequest = http.IncomingMessage | http2.Http2ServerRequest;
type OutgoingResponse = http.ServerResponse | http2.Http2ServerResponse;

export async function startFakeServer(options: FakeServerOptions): Promise<FakeLlmServer> {
  const { protocol } = options;
  const requests: FakeRequest[] = [];
  const queue: FakeTurn[] = [];
  let responder: FakeResponder | undefined;

  async function handle(incoming: IncomingRequest, response: OutgoingResponse): Promise<void> {
    const request = await readRequest(incoming);
    const index = requests.length;
    requests.push(request);
    // Not "finish": the HTTP/2 compatibility response emits that on a reset stream too.
    response.on("close", () => (request.closedEarly = !response.writableEnded));
    if (!protocol.matches(request)) {
      return sendError(response, 404, `fake LLM: no route for ${request.method} ${request.path}`);
    }
    const turn = queue.shift() ?? responder?.(request, index);
    if (!turn) return sendError(response, 500, "fake LLM: no scripted turn");
    if (turn.type === "hang") return;
    if (turn.type === "error") return sendError(response, turn.status, turn.message ?? `fake LLM: scripted ${turn.status} error`);
    const { headers, frames } = protocol.stream(turn, request);
    response.writeHead(200, headers);
    for (const [frameIndex, frame] of frames.entries()) {
      if (response.destroyed || !response.writable) return;
      // Both response types take a string or bytes; their overload sets just do not unify.
      (response as { write(chunk: string | Uint8Array): boolean }).write(frame);
      if (turn.delayMs && frameIndex < frames.length - 1) await sleep(turn.delayMs);
    }
    response.end();
  }

  function sendError(response: OutgoingResponse, status: number, message: string): void {
    const { headers, body } = protocol.error(status, message);
    response.writeHead(status, headers);
    response.end(body);
  }

  function onRequest(incoming: IncomingRequest, response: OutgoingResponse): void {
    handle(incoming, response).catch((error: unknown) => {
      if (!response.headersSent) sendError(response, 500, `fake LLM: ${error instanceof Error ? error.message : String(error)}`);
      else response.destroy();
    });
  }

  const listening = protocol.transport === "http2" ? listenHttp2(onRequest, options.port) : listenHttp1(onRequest, options.port);
  const { port, close } = await listening;
  const url = `http://127.0.0.1:${port}${options.basePath ?? ""}`;
  return {
    provider: options.provider,
    url,
    config: options.config(url),
    requests,
    enqueue: (...turns) => void queue.push(...turns),
    setResponder: (next) => void (responder = next),
    close,
  };
}

async function readRequest(incoming: IncomingRequest): Promise<FakeRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(Buffer.from(chunk as Uint8Array));
  const raw = Buffer.concat(chunks).toString("utf8");
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  let body: unknown = raw;
  try {
    body = raw ? JSON.parse(raw) : undefined;
  } catch {
    // Not JSON: keep the raw text so a test can see what arrived.
  }
  return { method: incoming.method ?? "GET", path: incoming.url ?? "/", body, headers, closedEarly: false };
}

interface Listening {
  port: number;
  close(): Promise<void>;
}

function listenHttp1(onRequest: (request: IncomingRequest, response: OutgoingResponse) => void, port = 0): Promise<Listening> {
  const server = http.createServer(onRequest);
  return listen(server, port, () => server.closeAllConnections());
}

/** Bedrock's SDK talks HTTP/2; over plain http that is h2c with prior knowledge, which http2.createServer speaks. */
function listenHttp2(onRequest: (request: IncomingRequest, response: OutgoingResponse) => void, port = 0): Promise<Listening> {
  const server = http2.createServer();
  server.on("request", onRequest);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  return listen(server, port, () => {
    for (const session of sessions) session.destroy();
  });
}

function listen(server: http.Server | http2.Http2Server, port: number, dropConnections: () => void): Promise<Listening> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((resolveClose) => {
            server.close(() => resolveClose());
            dropConnections();
          }),
      });
    });
  });
}

/** Usage for a scripted turn: the turn's numbers over small non-zero defaults. */
export function turnUsage(turn: FakeRespondTurn): LlmUsage {
  return { ...emptyUsage(), inputTokens: 10, outputTokens: 5, ...turn.usage };
}

export function textChunks(turn: FakeRespondTurn): string[] {
  if (turn.text === undefined) return [];
  return typeof turn.text === "string" ? [turn.text] : turn.text;
}

/** Splits text into `count` pieces of similar length (never splitting a code point), dropping empty ones. */
export function splitText(text: string, count: number): string[] {
  const characters = Array.from(text);
  const size = Math.max(1, Math.ceil(characters.length / count));
  const pieces: string[] = [];
  for (let start = 0; start < characters.length; start += size) pieces.push(characters.slice(start, start + size).join(""));
  return pieces;
}

export function defaultSignature(turn: FakeRespondTurn): string {
  return turn.reasoningSignature ?? Buffer.from(`fake-signature:${turn.reasoning ?? ""}`).toString("base64");
}

export function pathname(path: string): string {
  return new URL(path, "http://fake").pathname;
}

export function searchParams(path: string): URLSearchParams {
  return new URL(path, "http://fake").searchParams;
}
