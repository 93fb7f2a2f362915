import { openDatabase, type DatabaseHandle } from "../db/index.ts";
import { accessUrlOf, type ServerConfig } from "../config.ts";
import { JobRunner } from "../jobs/runner.ts";
import type { Logger } from "../logger.ts";
import { daemonBin } from "../server/server.ts";
import { createProvisioning } from "./index.ts";

/** NOTIFY channel: agents whose tokens a build revoked (payload: comma-separated ids); servers cut their tunnels. */
export const AGENTS_REVOKED_CHANNEL = "kiln_agents_revoked";

export async function announceRevoked(database: DatabaseHandle, agentIds: string[]): Promise<void> {
  if (agentIds.length > 0) await database.notify(AGENTS_REVOKED_CHANNEL, agentIds.join(","));
}

/**
 * `kiln provisioner`: a process that only runs workspace builds and template imports from the shared job
 * table, for scaling provisioning out across machines. It needs Postgres (shared with the servers) and
 * the access URL workspaces dial.
 */
export async function startProvisionerDaemon(config: ServerConfig, log: Logger): Promise<{ runner: JobRunner; database: DatabaseHandle; close(): Promise<void> }> {
  if (!config.postgresUrl) throw new Error("kiln provisioner needs the deployment's Postgres (--postgres-url / KILN_POSTGRES_URL); embedded PGlite is a single process's");
  if (!config.accessUrl) throw new Error("kiln provisioner needs the URL workspaces reach the control plane at (--access-url / KILN_ACCESS_URL)");
  const database = await openDatabase({ postgresUrl: config.postgresUrl }, log);
  const provisioning = createProvisioning(config, { daemonCommand: [process.execPath, daemonBin], log: log.child({ module: "provisioner" }) });
  const runner = new JobRunner({
    database,
    log: log.child({ module: "provisioner" }),
    concurrency: Math.max(1, config.provisionerConcurrency),
    handlers: provisioning.handlers({ database, accessUrl: accessUrlOf(config), onAgentsRevoked: (ids) => void announceRevoked(database, ids).catch(() => {}) }),
  });
  await runner.start();
  log.info({ workerId: runner.workerId, accessUrl: accessUrlOf(config), terraform: provisioning.toolchain?.terraformPath ?? null }, "kiln provisioner ready");
  return {
    runner, database,
    async close() {
      await runner.stop();
      await database.close();
    },
  };
}
