import type { WebSocket } from "ws";

/**
 * Pings `ws` every `intervalMs` and calls `onDead` once the peer has let two pings
 * go unanswered. Any inbound message also counts as a sign of life, since a pong can
 * queue behind a large transfer.
 */
export function startHeartbeat(ws: WebSocket, intervalMs: number, onDead: () => void): () => void {
  let unanswered = 0;
  const alive = () => {
    unanswered = 0;
  };
  ws.on("pong", alive);
  ws.on("message", alive);
  const timer = setInterval(() => {
    if (unanswered >= 2) {
      stop();
      onDead();
      return;
    }
    unanswered += 1;
    ws.ping();
  }, intervalMs);
  timer.unref();
  function stop() {
    clearInterval(timer);
    ws.off("pong", alive);
    ws.off("message", alive);
  }
  return stop;
}
