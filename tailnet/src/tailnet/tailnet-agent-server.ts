import http2 from "node:http2";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { silentLogger, type Logger } from "../transport.ts";
import { CONNECTION_WINDOW_BYTES, MAX_CONCURRENT_STREAMS, MAX_SESSION_MEMORY_MB, STREAM_WINDOW_BYTES } from "../relay/http2-settings.ts";
import { TAILNET_CREDENTIAL_HEADER, credentialMatches } from "./credential.ts";

export interface TailnetAgentServerOptions {
  /** The daemon's tailnet port; userspace tailscaled forwards inbound tailnet TCP to 127.0.0.1 on this port. */
  port: number;
  /** The control plane's per-build credential. Any process in the workspace can reach 127.0.0.1:port, so every request must carry it. */
  credential: string;
  /** A node http2 compat request handler, e.g. `getRequestListener(app.fetch)`. */
  handler: (request: Http2ServerRequest, response: Http2ServerResponse) => void;
  log?: Logger;
}

export interface TailnetAgentServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The daemon's end of the tailnet transport: an h2c server on 127.0.0.1:port that refuses requests without the credential. */
export async function serveOnTailnet(options: TailnetAgentServerOptions): Promise<TailnetAgentServer> {
  const log = options.log ?? silentLogger;
  const server = http2.createServer(
    { settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: MAX_CONCURRENT_STREAMS }, maxSessionMemory: MAX_SESSION_MEMORY_MB },
    (request, response) => {
      const presented = request.headers[TAILNET_CREDENTIAL_HEADER];
      if (!credentialMatches(options.credential, typeof presented === "string" ? presented : undefined)) {
        log.warn({ path: request.url }, "tailnet request without the control plane's credential refused");
        response.writeHead(401, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "unauthorized", message: "missing or wrong control-plane credential" } }));
        return;
      }
      delete request.headers[TAILNET_CREDENTIAL_HEADER];
      options.handler(request, response);
    },
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.on("connect", () => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Open sessions keep close() waiting; the control plane reconnects on demand.
        for (const session of sessions) session.destroy();
      }),
  };
}
