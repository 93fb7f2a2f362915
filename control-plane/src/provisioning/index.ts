import path from "node:path";
import { createLocalProvisioner, Terraform, type Provisioner } from "@kiln/provisioner";
import { createDaemonBundler, type DaemonBundle } from "../agents/daemon-bundle.ts";
import { initScripts } from "../agents/init-script.ts";
import type { ServerConfig } from "../config.ts";
import type { DatabaseHandle } from "../db/index.ts";
import type { JobHandler } from "../jobs/runner.ts";
import type { Logger } from "../logger.ts";
import { createImportHandler } from "../templates/versions.ts";
import { createBuildHandler } from "../workspaces/build-job.ts";

/**
 * Variables terraform (and what its local-exec provisioners start) inherit from the server: enough to find
 * programs, Docker and Kubernetes, never the server's own secrets (database URL, provider keys).
 */
const INHERITED = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
  "KUBECONFIG", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"];

export function terraformEnvironment(environment: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const result: Record<string, string> = {};
  for (const name of INHERITED) if (environment[name] !== undefined) result[name] = environment[name]!;
  return result;
}

export interface Provisioning {
  provisioners: Record<string, Provisioner>;
  terraform: Terraform.TerraformProvisioner;
  /** Null when neither KILN_TERRAFORM_PATH nor the pinned build exists. */
  toolchain: Terraform.TerraformToolchain | null;
  daemonBundler: { get(): Promise<DaemonBundle> };
  handlers(deps: { database: DatabaseHandle; accessUrl: string; onAgentsRevoked(agentIds: string[]): void }): { workspace_build: JobHandler; template_import: JobHandler };
}

/** The provisioners a server or a standalone `kiln provisioner` runs: local and terraform, with Kiln's init script. */
export function createProvisioning(config: ServerConfig, options: { daemonCommand: string[]; log: Logger; daemonBundler?: { get(): Promise<DaemonBundle> } }): Provisioning {
  const daemonBundler = options.daemonBundler ?? createDaemonBundler();
  const toolchain = Terraform.findToolchain({ terraformPath: config.terraformPath, cliConfigFile: config.terraformCliConfig });
  if (!toolchain) options.log.warn("terraform not found: terraform templates cannot be imported or built (run node provisioner/scripts/toolchain.mjs or set KILN_TERRAFORM_PATH)");
  const terraform = Terraform.createTerraformProvisioner({
    toolchain,
    workDirectory: path.join(config.dataDir, "terraform"),
    environment: terraformEnvironment(),
    timeoutMs: config.terraformTimeoutMs,
    async initScripts() {
      const bundle = await daemonBundler.get();
      return initScripts({ daemon: bundle, nodeVersion: process.version });
    },
  });
  const provisioners: Record<string, Provisioner> = {
    local: createLocalProvisioner({ dataDir: config.dataDir, daemonCommand: options.daemonCommand }),
    terraform,
  };
  return {
    provisioners, terraform, toolchain, daemonBundler,
    handlers: (deps) => ({
      workspace_build: createBuildHandler({ database: deps.database, provisioners, accessUrl: deps.accessUrl, onAgentsRevoked: deps.onAgentsRevoked }),
      template_import: createImportHandler({ database: deps.database, provisioner: terraform, accessUrl: deps.accessUrl }),
    }),
  };
}
