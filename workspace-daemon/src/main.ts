import { getRequestListener } from "@hono/node-server";
import { RelayAgent } from "@kiln/tailnet";
import pino from "pino";
import { ControlPlaneClient } from "./agent/control-plane.ts";
import { AgentDuties } from "./agent/duties.ts";
import { TailnetMember } from "./agent/tailnet-member.ts";
import { createDaemonApp } from "./api/app.ts";
import { withByteStreams } from "./api/byte-streams.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { ProcessManager } from "./processes/index.ts";
import { PtyManager } from "./pty/index.ts";
import { loadOrCreateHostKey, SshServer } from "./ssh/index.ts";
import { version } from "./version.ts";

/** kiln-daemon: dials out to the control plane and serves the workspace API through that tunnel only. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`kiln-daemon: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = pino({ level: config.logLevel, base: { service: "kiln-daemon" }, redact: ["token", "*.token", "authorization", "*.authorization"] });
  // Children must not inherit the agent token: a process in the workspace is not the daemon.
  const childEnvironment = { ...process.env };
  for (const key of Object.keys(childEnvironment)) if (key.startsWith("KILN_")) delete childEnvironment[key];

  const processes = new ProcessManager({ root: config.workdir, log, env: childEnvironment });
  const pty = new PtyManager({ root: config.workdir, log, env: childEnvironment });
  const ssh = new SshServer({ hostKey: await loadOrCreateHostKey(config.stateDir), root: config.workdir, env: childEnvironment, log });
  const app = createDaemonApp({ root: config.workdir, processes, pty, log, info: { version } });
  const controlPlane = new ControlPlaneClient({ url: config.controlPlaneUrl, token: config.agentToken, log, version, directory: config.workdir });
  // Startup/shutdown/cron scripts and metadata from the template; the agent's env joins childEnvironment.
  const duties = new AgentDuties({ client: controlPlane, log, workdir: config.workdir, environment: childEnvironment });
  const handler = withByteStreams({ root: config.workdir, pty, ssh, log }, getRequestListener(app.fetch) as never);
  const relay = new RelayAgent({
    url: `${config.controlPlaneUrl}/api/v1/agent/relay`,
    token: config.agentToken,
    handler,
    framing: config.relayFraming,
    log: log.child({ module: "relay" }),
    onStateChange: (state) => log.info({ state }, "relay state"),
  });

  // When the deployment runs a tailnet, the control plane reaches the daemon over it; the relay stays up as the fallback.
  const tailnet = new TailnetMember({
    client: controlPlane, handler, ssh, stateDir: config.stateDir, binDirs: config.tailscaleBinDir ? [config.tailscaleBinDir] : [],
    environment: childEnvironment, log: log.child({ module: "tailnet" }),
  });

  log.info({ version, workdir: config.workdir, controlPlane: config.controlPlaneUrl, pid: process.pid }, "kiln-daemon starting");
  await controlPlane.reportLifecycle("starting");
  relay.start();
  tailnet.start();
  while (relay.state !== "connected" && relay.state !== "stopped") await relay.waitConnected(60_000).catch(() => {});
  const started = await duties.start();
  await controlPlane.reportLifecycle(started);
  log.info({ state: started }, "kiln-daemon ready");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "kiln-daemon shutting down");
    await controlPlane.reportLifecycle("shutting_down", { attempts: 2 });
    const stopped = await duties.stop();
    ssh.close();
    pty.shutdown();
    await processes.shutdown();
    await controlPlane.reportLifecycle(stopped, { attempts: 2 });
    await tailnet.stop();
    await relay.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

await main();
