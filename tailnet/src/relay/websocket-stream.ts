import type { Duplex } from "node:stream";
import { createWebSocketStream, type WebSocket } from "ws";

/**
 * A WebSocket as a byte stream for HTTP/2. HTTP/2 writes a frame header and its payload as separate
 * buffers; without `_writev` each became its own WebSocket message (a 64 MiB body was ~8,000 messages,
 * a small response 4). Batching what is queued into one message cuts that to a handful.
 */
export function webSocketByteStream(ws: WebSocket): Duplex {
  const duplex = createWebSocketStream(ws);
  duplex._writev = (chunks, callback) => {
    ws.send(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((entry) => entry.chunk as Buffer)), callback);
  };
  return duplex;
}

/**
 * Client frames carry an all-zero mask. RFC 6455 masking protects intermediaries from content a
 * browser script chose; the daemon is not a browser and the tunnel runs over TLS in production, so
 * XOR-ing every byte in JavaScript (40 % of the daemon's CPU on bulk transfers) buys nothing. `ws`
 * offers this option for exactly such non-browser clients.
 */
export function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
