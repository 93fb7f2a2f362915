import type { IncomingMessage } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { DIRECT_RELAY_PROTOCOL, directCarrier, webSocketCarrier, type RelayCarrier } from "./carrier.ts";
import { TunnelError, silentLogger, type AgentConnection, type DialOptions, type Logger, type Transport } from "../transport.ts";
import { abortReason } from "./abort-reason.ts";
import { RelayConnection } from "./relay-connection.ts";

export const DEFAULT_RELAY_PATH = "/api/v1/agent/relay";

export interface RelayServerOptions {
  /** Validates the daemon's bearer token (from the `Authorization: Bearer <token>` header of the upgrade request). Return null to refuse with HTTP 401. */
  authenticate(token: string): Promise<{ agentId: string } | null>;
  /** Fires for every new agent connection, including one that replaces a previous connection of the same agent. */
  onConnect?(agentId: string): void;
  /** Fires when an agent has no live connection left (not when a newer connection replaced it). */
  onDisconnect?(agentId: string): void;
  log?: Logger;
  /** default "/api/v1/agent/relay" */
  path?: string;
  /** default 15000: a WebSocket ping or HTTP/2 PING this often; a peer that leaves 2 unanswered is dropped */
  pingIntervalMs?: number;
}

interface DialWaiter {
  resolve(connection: RelayConnection): void;
  reject(error: Error): void;
}

/**
 * The control-plane side of the relay: accepts agents' upgraded connections and is the HTTP/2 client
 * over each of them. An agent asks for `Upgrade: kiln-relay-h2` (HTTP/2 straight on the socket) or
 * `Upgrade: websocket` (HTTP/2 in WebSocket messages, for proxies that pass nothing else).
 */
export class RelayServer implements Transport {
  readonly kind = "relay";
  readonly #options: RelayServerOptions;
  readonly #log: Logger;
  readonly #path: string;
  readonly #pingIntervalMs: number;
  readonly #webSocketServer = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
  readonly #connections = new Map<string, RelayConnection>();
  readonly #waiters = new Map<string, Set<DialWaiter>>();
  #closed = false;

  constructor(options: RelayServerOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.#path = options.path ?? DEFAULT_RELAY_PATH;
    this.#pingIntervalMs = options.pingIntervalMs ?? 15_000;
  }

  /** Call from the http server's "upgrade" event. Returns false when req.url is not this path (caller handles it). Responds 401 JSON-free plain HTTP on bad/missing token. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (new URL(req.url ?? "/", "http://relay").pathname !== this.#path) return false;
    void this.#upgrade(req, socket, head);
    return true;
  }

  async dial(agentId: string, options: DialOptions = {}): Promise<AgentConnection> {
    const live = this.#connections.get(agentId);
    if (live && !live.closed) return live;
    if (this.#closed) throw new TunnelError("agent_unreachable", `relay is closed; workspace agent ${agentId} is unreachable`);
    const { timeoutMs = 5000, signal } = options;
    signal?.throwIfAborted();

    return new Promise<AgentConnection>((resolve, reject) => {
      const waiters = this.#waiters.get(agentId) ?? new Set<DialWaiter>();
      this.#waiters.set(agentId, waiters);
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        waiters.delete(waiter);
        if (waiters.size === 0 && this.#waiters.get(agentId) === waiters) this.#waiters.delete(agentId);
      };
      const waiter: DialWaiter = {
        resolve: (connection) => {
          finish();
          resolve(connection);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      const onAbort = () => waiter.reject(abortReason(signal));
      const timer = setTimeout(() => {
        waiter.reject(new TunnelError("agent_unreachable", `workspace agent ${agentId} is not connected (waited ${timeoutMs} ms)`));
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.add(waiter);
    });
  }

  isConnected(agentId: string): boolean {
    const connection = this.#connections.get(agentId);
    return connection !== undefined && !connection.closed;
  }

  connectedAgents(): string[] {
    return [...this.#connections.keys()].filter((agentId) => this.isConnected(agentId));
  }

  /** Drop an agent's connection now (e.g. its token was revoked). */
  disconnect(agentId: string): void {
    const connection = this.#connections.get(agentId);
    if (!connection) return;
    this.#log.info({ agentId }, "relay agent disconnected by control plane");
    connection.terminate();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [agentId, waiters] of this.#waiters) {
      for (const waiter of waiters) waiter.reject(new TunnelError("agent_unreachable", `relay is closed; workspace agent ${agentId} is unreachable`));
    }
    const connections = [...this.#connections.values()];
    for (const connection of connections) connection.terminate();
    await Promise.all(connections.map((connection) => connection.whenSocketClosed()));
    this.#webSocketServer.close();
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Until `ws` takes the socket over, a reset from the client must not become an uncaught error.
    const onSocketError = (error: Error) => this.#log.debug({ err: error }, "relay upgrade socket error");
    socket.on("error", onSocketError);
    const remoteAddress = req.socket.remoteAddress;
    if (this.#closed) return refuseUpgrade(socket, 503);

    const token = bearerToken(req.headers.authorization);
    if (!token) {
      this.#log.warn({ remoteAddress }, "relay upgrade without bearer token");
      return refuseUpgrade(socket, 401);
    }
    let identity: { agentId: string } | null;
    try {
      identity = await this.#options.authenticate(token);
    } catch (error) {
      this.#log.error({ remoteAddress, err: error }, "relay authentication failed");
      return refuseUpgrade(socket, 500);
    }
    if (!identity) {
      this.#log.warn({ remoteAddress }, "relay token rejected");
      return refuseUpgrade(socket, 401);
    }
    if (socket.destroyed) return;
    if (this.#closed) return refuseUpgrade(socket, 503);

    const { agentId } = identity;
    socket.off("error", onSocketError);
    if (req.headers.upgrade?.trim().toLowerCase() === DIRECT_RELAY_PROTOCOL) {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${DIRECT_RELAY_PROTOCOL}\r\n\r\n`);
      if (head.length > 0) socket.unshift(head);
      this.#attach(agentId, directCarrier(socket as Socket, this.#log, { agentId }), remoteAddress);
      return;
    }
    this.#webSocketServer.handleUpgrade(req, socket, head, (ws) => this.#attach(agentId, webSocketCarrier(ws, this.#log, { agentId }), remoteAddress));
  }

  #attach(agentId: string, carrier: RelayCarrier, remoteAddress: string | undefined): void {
    if (this.#closed) {
      carrier.terminate();
      return;
    }
    const previous = this.#connections.get(agentId);
    const connection = new RelayConnection({
      agentId,
      carrier,
      log: this.#log,
      pingIntervalMs: this.#pingIntervalMs,
      onClose: (closed) => {
        if (this.#connections.get(agentId) !== closed) return;
        this.#connections.delete(agentId);
        this.#log.info({ agentId }, "relay agent disconnected");
        this.#options.onDisconnect?.(agentId);
      },
    });
    // Registered before the old one closes, so its close does not report the agent gone.
    this.#connections.set(agentId, connection);
    if (previous) {
      this.#log.info({ agentId, remoteAddress, framing: carrier.framing }, "relay agent reconnected; replacing previous connection");
      previous.terminate();
    } else {
      this.#log.info({ agentId, remoteAddress, framing: carrier.framing }, "relay agent connected");
    }
    this.#options.onConnect?.(agentId);
    const waiters = this.#waiters.get(agentId);
    if (waiters) for (const waiter of [...waiters]) waiter.resolve(connection);
  }
}

function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  return match?.[1];
}

function refuseUpgrade(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  const body = `${STATUS_CODES[status] ?? "Error"}\n`;
  const wwwAuthenticate = status === 401 ? "WWW-Authenticate: Bearer\r\n" : "";
  socket.once("finish", () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
      "Connection: close\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      wwwAuthenticate +
      "\r\n" +
      body,
  );
}
