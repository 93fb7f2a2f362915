import type { Duplex } from "node:stream";
import { createWebSocketStream, WebSocket } from "ws";

/**
 * While the socket holds less than this, a write is acknowledged at once and sent with what follows
 * in the next few turns of the event loop. Above it, the acknowledgement waits for the socket, so
 * HTTP/2 feels the backpressure and a bulk transfer cannot queue up ahead of small frames.
 */
const COALESCE_LIMIT_BYTES = 256 * 1024;
/** A batch this big goes out at once: waiting would only slow a bulk transfer down. */
const FLUSH_NOW_BYTES = 16 * 1024;

/**
 * A WebSocket as a byte stream for HTTP/2, sending what HTTP/2 writes within three turns of the event
 * loop as one WebSocket message.
 *
 * HTTP/2 writes a frame header and its payload as separate buffers, and node sends a response's
 * END_STREAM in a second batch, only after the first one's write has completed. Sent as they came,
 * a small response was two to four messages, each a socket write that wakes the peer (on this kind
 * of VM a write costs 0.1–0.3 ms); acknowledging small writes at once lets the second batch join the
 * first, so a small request or response is one message.
 */
export function webSocketByteStream(ws: WebSocket): Duplex {
  const duplex = createWebSocketStream(ws);
  let queued: Buffer[] = [];
  let queuedBytes = 0;
  /** Callbacks of writes sent with the next flush, held back for backpressure. */
  let held: ((error?: Error | null) => void)[] = [];
  let flushScheduled = false;

  // Held callbacks always travel with queued bytes, so an empty queue has none waiting.
  const flush = () => {
    flushScheduled = false;
    if (queued.length === 0) return;
    const message = queued.length === 1 ? queued[0]! : Buffer.concat(queued, queuedBytes);
    const callbacks = held;
    queued = [];
    queuedBytes = 0;
    held = [];
    ws.send(message, callbacks.length === 0 ? undefined : (error) => callbacks.forEach((callback) => callback(error)));
  };

  const write = (chunks: Buffer[], callback: (error?: Error | null) => void) => {
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.once("open", () => write(chunks, callback));
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) {
      // Closing or closed: `ws` reports the error to the callback.
      ws.send(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), callback);
      return;
    }
    for (const chunk of chunks) {
      queued.push(chunk);
      queuedBytes += chunk.length;
    }
    const overLimit = ws.bufferedAmount + queuedBytes > COALESCE_LIMIT_BYTES;
    if (queuedBytes >= FLUSH_NOW_BYTES) {
      if (overLimit) held.push(callback);
      flush();
      if (!overLimit) callback();
      return;
    }
    if (!flushScheduled) {
      flushScheduled = true;
      // Three turns of the event loop: node's JSStreamSocket completes a write in a setImmediate; only
      // then does HTTP/2 shut the stream's writable side, in a native immediate of the next turn; and a
      // compat-API response (what Hono's adapter writes to) ends with an empty trailers frame submitted
      // from there, written in the turn after. Flushing after that sends a small response (HEADERS,
      // DATA, END_STREAM) as one message instead of two.
      setImmediate(() => setImmediate(() => setImmediate(flush)));
    }
    if (overLimit) held.push(callback);
    else callback();
  };

  duplex._write = (chunk: Buffer, _encoding, callback) => write([chunk], callback);
  duplex._writev = (chunks, callback) => write(chunks.map((entry) => entry.chunk as Buffer), callback);
  const final = duplex._final.bind(duplex);
  duplex._final = (callback) => {
    // Acknowledged writes go out before the close frame.
    flush();
    final(callback);
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
