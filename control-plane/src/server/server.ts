import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { getRequestListener } from "@hono/node-server";
import { RelayServer } from "@kiln/tailnet";
import * as Agents from "../agents/index.ts";
import { createApp, type App } from "../api/app.ts";
import { accessUrlOf, splitListen, type ServerConfig } from "../config.ts";
import { openDatabase, type DatabaseHandle } from "../db/index.ts";
import { JobRunner } from "../jobs/runner.ts";
import type { Logger } from "../logger.ts";
import * as Templates from "../templates/index.ts";
import { createProvisioning } from "../provisioning/index.ts";
import { AGENTS_REVOKED_CHANNEL } from "../provisioning/standalone.ts";
import { configureFromEnvironment } from "../admin/bootstrap.ts";
import { createChatRuntime, type ChatRuntime } from "../chats/runtime.ts";
import { InteractiveEndpoints } from "../interactive/index.ts";
import { createSecretBox, loadServerKey } from "../secrets/index.ts";
import { ControlPlaneTailnet } from "../tailnet/index.ts";
import { TAILNET_ENDPOINTS_CHANNEL } from "../tailnet/agents.ts";
import { WorkspaceTunnel } from "../tailnet/tunnel.ts";
import { eq } from "drizzle-orm";
import { users } from "../db/schema.ts";
import { version } from "../version.ts";

export const daemonBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../workspace-daemon/bin/kiln-daemon.mjs");

export interface RunningServer {
  url: string;
  accessUrl: string;
  app: App;
  database: DatabaseHandle;
  relay: RelayServer;
  /** What the API dials workspaces through: the tailnet when on and joined, else the relay. */
  tunnel: WorkspaceTunnel;
  tailnet: ControlPlaneTailnet | undefined;
  chats: ChatRuntime;
  http: Server;
  close(): Promise<void>;
}

/** Wires and starts everything `kiln server` runs: database, API, relay tunnel, provisioner workers. */
export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  const database = await openDatabase(config.postgresUrl ? { postgresUrl: config.postgresUrl } : { pgliteDir: path.join(config.dataDir, "db") }, log);
  await Templates.ensureBuiltins(database.db);
  const serverKey = await loadServerKey({ dataDir: config.dataDir, configured: config.secretKey });
  const secrets = createSecretBox(serverKey);
  const configured = await configureFromEnvironment(database.db, secrets, process.env, log);
  if (configured.providers.length > 0) log.info({ providers: configured.providers, defaultModel: configured.defaultModel }, "llm providers configured from environment");

  const relay = new RelayServer({
    log: log.child({ module: "relay" }),
    authenticate: async (token) => {
      const agent = await Agents.authenticate(database.db, token);
      return agent ? { agentId: agent.id } : null;
    },
    onConnect: (agentId) => void Agents.update(database.db, agentId, { connectedAt: new Date(), lastSeenAt: new Date() }).catch(() => {}),
    onDisconnect: (agentId) => void Agents.update(database.db, agentId, { disconnectedAt: new Date() }).catch(() => {}),
  });
  let tailnet: ControlPlaneTailnet | undefined;
  if (config.tailnet) {
    try {
      const ownerIds = (await database.db.select({ id: users.id }).from(users).where(eq(users.suspended, false))).map((user) => user.id);
      tailnet = await ControlPlaneTailnet.start(config, { serverKey, log: log.child({ module: "tailnet" }), ownerIds });
    } catch (error) {
      await relay.close();
      await database.close();
      throw error;
    }
  }
  // The relay, or the tailnet first with the relay as fallback: every caller below dials through this.
  const tunnel = new WorkspaceTunnel({ relay, tailnet, db: database.db, relayFallback: config.tailnetRelayFallback, log: log.child({ module: "tunnel" }) });

  const chatRuntime = createChatRuntime({
    database, secrets, tunnel, log,
    worker: { concurrency: config.chatConcurrency, leaseMs: config.chatLeaseMs },
  });
  const provisioning = createProvisioning(config, { daemonCommand: [process.execPath, daemonBin], log: log.child({ module: "provisioner" }) });
  const app = createApp({ database, log, tunnel, tailnet, version, secrets, chats: chatRuntime.api, daemonBundler: provisioning.daemonBundler, dashboard: {} });
  const http = createServer(getRequestListener(app.fetch));
  // Web terminal, SSH and port forwarding WebSockets (the relay's agent path is tried first).
  const interactive = new InteractiveEndpoints({ database, tunnel, log });
  http.on("upgrade", (request, socket, head) => {
    if (!relay.handleUpgrade(request, socket, head) && !interactive.handleUpgrade(request, socket, head)) socket.destroy();
  });
  const [host, port] = splitListen(config.listen);
  try {
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(port, host || undefined, () => resolve());
    });
  } catch (error) {
    // headscale and tailscaled are child processes: they must not outlive a server that failed to start.
    await tailnet?.close();
    await relay.close();
    await database.close();
    throw error;
  }
  const bound = (http.address() as AddressInfo).port;
  const accessUrl = accessUrlOf(config, bound);

  const runner = new JobRunner({
    database,
    log: log.child({ module: "provisioner" }),
    concurrency: config.provisionerConcurrency,
    handlers: provisioning.handlers({ database, accessUrl, onAgentsRevoked: (ids) => ids.forEach((id) => tunnel.disconnect(id)) }),
  });
  await runner.start();
  // Builds run by a standalone `kiln provisioner` announce the agents they revoked; cut their tunnels here.
  const unlistenRevoked = await database.listen(AGENTS_REVOKED_CHANNEL, (payload) => payload.split(",").filter(Boolean).forEach((id) => tunnel.disconnect(id)));
  const unlistenEndpoints = tailnet
    ? await database.listen(TAILNET_ENDPOINTS_CHANNEL, (payload) => {
      const [agentId, address] = payload.split(" ");
      if (agentId) tunnel.endpointChanged(agentId, address && address !== "-" ? address : null);
    })
    : async () => {};
  await chatRuntime.start();

  return {
    url: `http://${host.includes(":") ? `[${host}]` : host || "0.0.0.0"}:${bound}`,
    accessUrl,
    app,
    database,
    relay,
    tunnel,
    tailnet,
    chats: chatRuntime,
    http,
    async close() {
      await chatRuntime.stop();
      await runner.stop();
      await unlistenRevoked().catch(() => {});
      await unlistenEndpoints().catch(() => {});
      interactive.close();
      await relay.close();
      await tailnet?.close();
      http.closeAllConnections?.();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await database.close();
    },
  };
}
