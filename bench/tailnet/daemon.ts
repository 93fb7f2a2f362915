/**
 * The workspace side of bench/tailnet.ts, in its own process: the daemon's real HTTP API
 * (createDaemonApp) served both ways the control plane reaches it, as workspace-daemon/src/main.ts
 * and agent/tailnet.test.ts wire it:
 * - a RelayAgent dialing the bench's RelayServer (HTTP/2 on the upgraded connection, the default framing);
 * - serveOnTailnet: h2c on 127.0.0.1:<port>, where the workspace's userspace tailscaled nodes forward
 *   inbound tailnet TCP. The tailscaled processes themselves are started by the bench, so it can
 *   kill them whatever happens to this process; where a process sits does not change the data path.
 *
 * Takes a DaemonStart message over IPC, answers DaemonReady, and exits when the parent disconnects
 * or on SIGTERM.
 */
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RelayAgent, serveOnTailnet } from "../../tailnet/src/index.ts";
import { createDaemonApp, ProcessManager, type DaemonApp, type DaemonAppDeps } from "../../workspace-daemon/src/index.ts";

export interface DaemonStart {
  type: "start";
  /** http:// URL of the relay endpoint. */
  relayUrl: string;
  token: string;
  /** The control plane's tailnet credential the h2c server demands. */
  credential: string;
  /** The port the ACL policy names. */
  tailnetPort: number;
  workdir: string;
}

export type DaemonMessage = { type: "ready"; pid: number } | { type: "failed"; message: string };

type RequestHandler = (request: Http2ServerRequest, response: Http2ServerResponse) => void;

// bench/ has no dependencies of its own: take the adapter and logger the daemon itself uses.
const daemonRequire = createRequire(resolve(dirname(fileURLToPath(import.meta.url)), "../../workspace-daemon/package.json"));
const { getRequestListener } = daemonRequire("@hono/node-server") as { getRequestListener(fetch: DaemonApp["fetch"]): RequestHandler };
const pino = daemonRequire("pino") as (options: { level: string }) => DaemonAppDeps["log"];

if (!process.send) {
  process.stderr.write("bench/tailnet/daemon.ts must be forked with an IPC channel\n");
  process.exit(2);
}
const send = (message: DaemonMessage) => process.send?.(message);

async function start(options: DaemonStart): Promise<() => Promise<void>> {
  const log = pino({ level: "silent" });
  const processes = new ProcessManager({ root: options.workdir, log, killGraceMs: 500 });
  const app = createDaemonApp({ root: options.workdir, processes, log, info: { version: "0.0.0-bench" } });
  const handler = getRequestListener(app.fetch);
  const tailnet = await serveOnTailnet({ port: options.tailnetPort, credential: options.credential, handler });
  const relay = new RelayAgent({ url: options.relayUrl, token: options.token, handler });
  relay.start();
  await relay.waitConnected(30_000);
  return async () => {
    await relay.stop();
    await tailnet.close();
    await processes.shutdown();
  };
}

let stop: (() => Promise<void>) | undefined;
const exit = () => {
  void (stop?.() ?? Promise.resolve()).finally(() => process.exit(0));
};
process.on("disconnect", exit);
process.on("SIGTERM", exit);
process.once("message", (message: DaemonStart) => {
  start(message).then(
    (stopDaemon) => {
      stop = stopDaemon;
      send({ type: "ready", pid: process.pid });
    },
    (error: unknown) => send({ type: "failed", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
