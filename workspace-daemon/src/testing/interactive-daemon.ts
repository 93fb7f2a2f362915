import { connect, createServer, type ClientHttp2Session, type ClientHttp2Stream, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { createDaemonApp } from "../api/app.ts";
import { withByteStreams } from "../api/byte-streams.ts";
import { ProcessManager } from "../processes/index.ts";
import { PtyManager, type PtyManagerOptions } from "../pty/index.ts";
import { loadOrCreateHostKey, SshServer } from "../ssh/index.ts";
import { silentLog } from "./fixture.ts";

/** The daemon's whole request handler (Hono app + byte streams) behind a real node:http2 server, as the tunnel serves it. */
export interface InteractiveDaemon {
  client: ClientHttp2Session;
  pty: PtyManager;
  ssh: SshServer;
  /** JSON request; parses the JSON response. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Opens a byte stream like the tunnel's openStream; resolves with the status and the stream. */
  open(path: string): Promise<{ status: number; stream: ClientHttp2Stream }>;
  close(): Promise<void>;
}

export async function startInteractiveDaemon(root: string, stateDir: string, ptyOptions: Partial<PtyManagerOptions> = {}): Promise<InteractiveDaemon> {
  const env = { ...process.env, HOME: root };
  const processes = new ProcessManager({ root, log: silentLog, env });
  const pty = new PtyManager({ root, log: silentLog, env, ...ptyOptions });
  const ssh = new SshServer({ hostKey: await loadOrCreateHostKey(stateDir), root, env, log: silentLog });
  const app = createDaemonApp({ root, processes, pty, log: silentLog, info: { version: "0.0.0-test" } });
  const server: Http2Server = createServer(withByteStreams({ root, pty, ssh, log: silentLog }, getRequestListener(app.fetch) as never));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);

  const open: InteractiveDaemon["open"] = (path) =>
    new Promise((resolve, reject) => {
      const stream = client.request({ ":method": "POST", ":path": path });
      stream.once("response", (headers) => resolve({ status: Number(headers[":status"]), stream }));
      stream.once("error", reject);
    });
  const call: InteractiveDaemon["call"] = (method, path, body) =>
    new Promise((resolve, reject) => {
      const stream = client.request({ ":method": method, ":path": path, "content-type": "application/json" });
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on("response", (headers) => (status = Number(headers[":status"])));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status, body: text ? JSON.parse(text) : null });
      });
      stream.on("error", reject);
      stream.end(body === undefined ? undefined : JSON.stringify(body));
    });
  return {
    client, pty, ssh, call, open,
    async close() {
      ssh.close();
      pty.shutdown();
      await processes.shutdown();
      client.destroy();
      server.close();
    },
  };
}

/** Collects a stream's output and resolves once it contains `text` (or rejects after a timeout, showing what came). */
export function outputOf(stream: NodeJS.ReadableStream): { text(): string; waitFor(text: string | RegExp, timeoutMs?: number): Promise<string> } {
  let output = "";
  const waiters = new Set<() => void>();
  stream.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
    for (const waiter of waiters) waiter();
  });
  return {
    text: () => output,
    waitFor(text, timeoutMs = 10_000) {
      const matches = () => (typeof text === "string" ? output.includes(text) : text.test(output));
      if (matches()) return Promise.resolve(output);
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!matches()) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(output);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${String(text)}; output so far:\n${output}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
  };
}
