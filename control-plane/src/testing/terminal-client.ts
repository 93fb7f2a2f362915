import { WebSocket } from "ws";

/** A web-terminal WebSocket client as a browser would hold one (binary frames = bytes, text frames = JSON). */
export interface TerminalClient {
  ws: WebSocket;
  /** Binary bytes received so far. */
  received(): number;
  onBytes(listener: (chunk: Buffer) => void): void;
  /** JSON text messages received so far. */
  messages: unknown[];
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens `/api/v1/workspaces/{workspace}/pty` with a bearer token; rejects with the HTTP status when refused. */
export function openTerminal(baseUrl: string, token: string, workspace: string, query: Record<string, string>): Promise<TerminalClient> {
  const url = `${baseUrl.replace(/^http/, "ws")}/api/v1/workspaces/${encodeURIComponent(workspace)}/pty?${new URLSearchParams(query)}`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  let received = 0;
  const listeners: ((chunk: Buffer) => void)[] = [];
  const messages: unknown[] = [];
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      messages.push(JSON.parse(data.toString("utf8")));
      return;
    }
    received += data.length;
    for (const listener of listeners) listener(data);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, received: () => received, onBytes: (listener) => listeners.push(listener), messages, closed }));
    ws.once("unexpected-response", (_request, response) => reject(new Error(`terminal refused: HTTP ${response.statusCode}`)));
    ws.once("error", reject);
  });
}
