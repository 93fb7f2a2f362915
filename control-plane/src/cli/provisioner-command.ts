import type { Command } from "commander";
import { parseServerConfig } from "../config.ts";
import { createLogger } from "../logger.ts";

/** `kiln provisioner`: builds and imports only, sharing the job table with the servers. */
export function registerProvisionerCommand(program: Command): void {
  program.command("provisioner")
    .description("Run workspace builds and template imports only (scale-out); needs the deployment's Postgres")
    .option("--data-dir <path>", "where terraform working directories live (env KILN_DATA_DIR)")
    .option("--access-url <url>", "URL workspaces reach the control plane at (env KILN_ACCESS_URL)")
    .option("--postgres-url <url>", "the deployment's Postgres (env KILN_POSTGRES_URL)")
    .option("--concurrency <n>", "builds at once (env KILN_PROVISIONER_CONCURRENCY)")
    .action(async (flags: { dataDir?: string; accessUrl?: string; postgresUrl?: string; concurrency?: string }) => {
      const config = parseServerConfig({ dataDir: flags.dataDir, accessUrl: flags.accessUrl, postgresUrl: flags.postgresUrl, provisionerConcurrency: flags.concurrency });
      const log = createLogger({ level: config.logLevel });
      // Loaded here, not at the top: the rest of the CLI should not pay for the server's modules.
      const { startProvisionerDaemon } = await import("../provisioning/standalone.ts");
      const daemon = await startProvisionerDaemon(config, log);
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, "shutting down");
        await daemon.close();
        process.exit(0);
      };
      process.on("SIGINT", () => void stop("SIGINT"));
      process.on("SIGTERM", () => void stop("SIGTERM"));
    });
}
