import { existsSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { findBinaries } from "@kiln/tailnet";
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

/**
 * Local workspaces run the same one-file daemon bundle terraform workspaces download (written once per version into
 * the data dir): it starts in a fraction of the time the TypeScript sources take through tsx. The sources are
 * the fallback when bundling fails.
 */
async function bundledDaemonCommand(dataDir: string, bundler: { get(): Promise<DaemonBundle> }, fallback: string[], log: Logger): Promise<string[]> {
  try {
    const bundle = await bundler.get();
    const file = path.join(dataDir, "daemon", `kiln-daemon-${bundle.version}.mjs`);
    if (!existsSync(file)) {
      await mkdir(path.dirname(file), { recursive: true });
      const staging = `${file}.${process.pid}`;
      await writeFile(staging, bundle.content, { mode: 0o755 });
      await rename(staging, file);
    }
    return [process.execPath, file];
  } catch (error) {
    log.warn({ err: error }, "could not bundle kiln-daemon; local workspaces run it from its sources");
    return fallback;
  }
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
  const tailscaled = findBinaries(["tailscaled"]).found.tailscaled;
  const tailscaleBinDir = tailscaled ? path.dirname(tailscaled) : undefined;
  const provisioners: Record<string, Provisioner> = {
    local: createLocalProvisioner({
      dataDir: config.dataDir,
      daemonCommand: () => bundledDaemonCommand(config.dataDir, daemonBundler, options.daemonCommand, options.log),
      // Local workspaces share this host: its tailscaled serves them too.
      daemonEnvironment: tailscaleBinDir ? { KILN_TAILSCALE_BIN_DIR: tailscaleBinDir } : {},
    }),
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
