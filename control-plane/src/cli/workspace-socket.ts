import type { Duplex } from "node:stream";
import { WebSocket, createWebSocketStream } from "ws";
import { ApiError } from "../client/index.ts";
import { CloseCode, type InteractiveKind } from "../interactive/protocol.ts";

export interface SocketCredentials {
  url: string;
  token: string;
}

/** The WebSocket URL of an interactive endpoint (`pty`, `ssh`, `tcp`) of a workspace. */
export function workspaceSocketUrl(base: string, workspace: string, kind: InteractiveKind, query: Record<string, string | number | undefined> = {}): string {
  const url = new URL(`${base.replace(/\/$/, "")}/api/v1/workspaces/${encodeURIComponent(workspace)}/${kind}`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, String(value));
  return url.href;
}

/**
 * Opens an interactive WebSocket and its byte stream. A refused handshake rejects with the
 * server's ApiError (e.g. 404 workspace not found, 409 not running, 502 nothing listening).
 */
export function openWorkspaceSocket(credentials: SocketCredentials, workspace: string, kind: InteractiveKind, query: Record<string, string | number | undefined> = {}): Promise<{ ws: WebSocket; stream: Duplex }> {
  const ws = new WebSocket(workspaceSocketUrl(credentials.url, workspace, kind, query), {
    headers: { authorization: `Bearer ${credentials.token}` },
    perMessageDeflate: false,
    // An all-zero mask: masking protects proxies from content a browser script chose; the CLI is
    // not a browser, and XOR-ing every byte is work on both ends (`ws` offers this for such clients).
    generateMask: (mask: Buffer) => void mask.fill(0),
  });
  return new Promise((resolve, reject) => {
    let refused = false;
    ws.once("open", () => {
      // Wrapped in the same tick: the server may send at once (an SSH banner), and `ws`
      // drops messages that arrive while nobody listens.
      const stream = createWebSocketStream(ws);
      stream.on("error", () => {});
      // The stream only ends its readable side when the socket closes; a reader such as an
      // ssh2 client waits for `close`, so finish it once what was received has been read.
      ws.once("close", () => {
        if (stream.readableEnded) stream.destroy();
        else stream.once("end", () => stream.destroy());
      });
      resolve({ ws, stream });
    });
    ws.once("unexpected-response", (request, response) => {
      refused = true;
      let text = "";
      response.on("data", (chunk: Buffer) => (text += chunk));
      response.on("end", () => {
        let body: { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null = null;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: use the status alone
        }
        reject(new ApiError(response.statusCode ?? 0, body?.error?.code ?? "http_error", body?.error?.message ?? `HTTP ${response.statusCode}`, body?.error?.details));
        request.destroy();
      });
    });
    ws.on("error", (error) => {
      if (!refused) reject(new Error(`cannot reach ${credentials.url}: ${error.message}`));
    });
  });
}

/** What to tell a person when an interactive socket closed, or null when it closed normally. */
export function describeClose(workspace: string, code: number, reason: string): string | null {
  if (code === CloseCode.normal || code === 1005) return null;
  if (code === CloseCode.agentLost) return `connection to workspace '${workspace}' lost: ${reason || "the workspace agent disconnected"}; run the command again once the workspace is back`;
  if (code === 1006) return `connection to the Kiln server lost while connected to workspace '${workspace}'`;
  return `connection to workspace '${workspace}' closed: ${reason || `code ${code}`}`;
}
