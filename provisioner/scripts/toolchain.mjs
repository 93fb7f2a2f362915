#!/usr/bin/env node
// Builds the pinned Terraform toolchain Kiln provisions with, from source through the Go module proxy,
// into <repo>/.tools/terraform: the terraform binary, a filesystem mirror holding the Coder provider,
// and a CLI config (TF_CLI_CONFIG_FILE) that installs providers from that mirror only, never the network.
// Skips whatever is already built. Writes toolchain.json, which the server and tests read.
//
//   node provisioner/scripts/toolchain.mjs            build what is missing, print the paths
//   node provisioner/scripts/toolchain.mjs --check    exit 1 when the toolchain is not complete
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const TERRAFORM_VERSION = "1.5.7";
/** Providers put in the mirror: Go module, version, registry address. */
export const PROVIDERS = [
  // v2.20.0: the module proxy serves v2.12.0, v2.19.0 and v2.20.0 of this provider (v2.17.0 answers 403).
  { module: "github.com/coder/terraform-provider-coder/v2", version: "2.20.0", namespace: "coder", type: "coder" },
];

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** KILN_TOOLCHAIN_DIR builds elsewhere (e.g. to time a build from scratch); the server and tests read .tools/terraform. */
export const toolchainDir = process.env.KILN_TOOLCHAIN_DIR ? path.resolve(process.env.KILN_TOOLCHAIN_DIR) : path.join(root, ".tools", "terraform");
const log = (message) => process.stderr.write(`[toolchain] ${message}\n`);

export function goBinary() {
  for (const candidate of [...(process.env.PATH ?? "").split(path.delimiter).map((dir) => path.join(dir, "go")), "/usr/local/go/bin/go"]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function platform() {
  const arch = { x64: "amd64", arm64: "arm64", arm: "arm" }[process.arch] ?? process.arch;
  return `${process.platform}_${arch}`;
}

function terraformVersionOf(binary) {
  const result = spawnSync(binary, ["version", "-json"], { encoding: "utf8", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
  if (result.status !== 0) return null;
  try {
    return JSON.parse(result.stdout).terraform_version ?? null;
  } catch {
    return null;
  }
}

/** `go install module@version` into a scratch GOBIN; returns the built binary's path. */
function goInstall(go, module, version, binaryName) {
  const gobin = mkdtempSync(path.join(os.tmpdir(), "kiln-gobin-"));
  const started = Date.now();
  log(`building ${module}@v${version} (go install; this takes a few minutes the first time)`);
  execFileSync(go, ["install", "-trimpath", "-ldflags=-s -w", `${module}@v${version}`], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, GOBIN: gobin, GOTOOLCHAIN: "local", CGO_ENABLED: "0", GOFLAGS: "-buildvcs=false" },
  });
  log(`built ${binaryName} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { file: path.join(gobin, binaryName), cleanup: () => rmSync(gobin, { recursive: true, force: true }) };
}

function install(from, to) {
  mkdirSync(path.dirname(to), { recursive: true });
  const staging = `${to}.partial`;
  copyFileSync(from, staging);
  chmodSync(staging, 0o755);
  renameSync(staging, to);
}

/** The paths of a complete toolchain, or null. */
export function readToolchain() {
  const manifest = path.join(toolchainDir, "toolchain.json");
  if (!existsSync(manifest)) return null;
  const toolchain = JSON.parse(readFileSync(manifest, "utf8"));
  if (!existsSync(toolchain.terraform) || !existsSync(toolchain.cliConfig)) return null;
  if (!toolchain.providers.every((provider) => existsSync(provider.binary))) return null;
  return toolchain;
}

/** Builds what is missing. Returns the toolchain, or throws when Go is absent or a build fails. */
export function ensureToolchain() {
  const terraform = path.join(toolchainDir, "bin", "terraform");
  const mirror = path.join(toolchainDir, "mirror");
  const cliConfig = path.join(toolchainDir, "terraform.rc");
  const go = goBinary();
  const needsTerraform = !existsSync(terraform) || terraformVersionOf(terraform) !== TERRAFORM_VERSION;
  const providers = PROVIDERS.map((provider) => ({
    ...provider,
    source: `registry.terraform.io/${provider.namespace}/${provider.type}`,
    binary: path.join(mirror, "registry.terraform.io", provider.namespace, provider.type, provider.version, platform(), `terraform-provider-${provider.type}_v${provider.version}`),
  }));
  const missingProviders = providers.filter((provider) => !existsSync(provider.binary));
  if ((needsTerraform || missingProviders.length > 0) && !go) {
    throw new Error("Go is needed to build the Terraform toolchain (terraform and the Coder provider) and was not found on PATH");
  }
  if (needsTerraform) {
    const built = goInstall(go, "github.com/hashicorp/terraform", TERRAFORM_VERSION, "terraform");
    install(built.file, terraform);
    built.cleanup();
    const version = terraformVersionOf(terraform);
    if (version !== TERRAFORM_VERSION) throw new Error(`built terraform reports version ${version}, expected ${TERRAFORM_VERSION}`);
  }
  for (const provider of missingProviders) {
    const built = goInstall(go, provider.module, provider.version, `terraform-provider-${provider.type}`);
    install(built.file, provider.binary);
    built.cleanup();
  }
  // Only a filesystem mirror: no `direct {}` block, so Terraform never asks a registry for anything.
  const config = [
    "# Written by provisioner/scripts/toolchain.mjs. Providers install from the local mirror only.",
    "disable_checkpoint = true",
    "provider_installation {",
    "  filesystem_mirror {",
    `    path = ${JSON.stringify(mirror)}`,
    "  }",
    "}",
    "",
  ].join("\n");
  writeFileSync(cliConfig, config);
  const toolchain = { terraformVersion: TERRAFORM_VERSION, terraform, cliConfig, mirror, platform: platform(), providers };
  writeFileSync(path.join(toolchainDir, "toolchain.json"), `${JSON.stringify(toolchain, null, 2)}\n`);
  return toolchain;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    const toolchain = readToolchain();
    if (!toolchain) {
      log("the Terraform toolchain is not built; run: node provisioner/scripts/toolchain.mjs");
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify(toolchain, null, 2)}\n`);
  } else {
    const started = Date.now();
    const toolchain = ensureToolchain();
    log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${toolchain.terraform}`);
    process.stdout.write(`TF_CLI_CONFIG_FILE=${toolchain.cliConfig}\nKILN_TERRAFORM_PATH=${toolchain.terraform}\n`);
  }
}
