#!/usr/bin/env node
// Builds the pinned tailnet toolchain from source through the Go module proxy into <repo>/.tools/bin:
// tailscaled + tailscale (a version headscale supports) and headscale. Skips binaries already built
// at the pinned version.
//
//   node tailnet/scripts/toolchain.mjs            build what is missing, print the paths
//   node tailnet/scripts/toolchain.mjs --check    exit 1 when a binary is missing or at the wrong version
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** headscale 0.29 supports clients v1.80–v1.98. */
export const TAILSCALE_VERSION = "1.98.10";
export const HEADSCALE_VERSION = "0.29.2";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const binDir = path.join(root, ".tools", "bin");
const log = (message) => process.stderr.write(`[tailnet toolchain] ${message}\n`);

export function goBinary() {
  for (const candidate of [...(process.env.PATH ?? "").split(path.delimiter).map((dir) => path.join(dir, "go")), "/usr/local/go/bin/go"]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/** The first line of `<binary> <args>` (its version), or null when it does not run. */
function versionLine(binary, args) {
  if (!existsSync(binary)) return null;
  const result = spawnSync(binary, args, { encoding: "utf8", timeout: 10_000 });
  if (result.status !== 0) return null;
  return result.stdout.split("\n")[0]?.trim() ?? null;
}

const BINARIES = [
  // Built without VCS stamping the version reads "1.98.10-ERR-BuildInfo"; the prefix is what matters.
  { name: "tailscaled", versionArgs: ["--version"], matches: (line) => line === TAILSCALE_VERSION || line.startsWith(`${TAILSCALE_VERSION}-`) },
  { name: "tailscale", versionArgs: ["version"], matches: (line) => line === TAILSCALE_VERSION || line.startsWith(`${TAILSCALE_VERSION}-`) },
  { name: "headscale", versionArgs: ["version"], matches: (line) => line === `headscale version v${HEADSCALE_VERSION}` },
];

export function binaryPath(name) {
  return path.join(binDir, name);
}

/** Names of binaries missing or at the wrong version. */
export function missingBinaries() {
  return BINARIES.filter((binary) => {
    const line = versionLine(binaryPath(binary.name), binary.versionArgs);
    return line === null || !binary.matches(line);
  }).map((binary) => binary.name);
}

function goEnv(gobin) {
  return { ...process.env, GOBIN: gobin, GOTOOLCHAIN: "local", CGO_ENABLED: "0", GOFLAGS: "-buildvcs=false" };
}

function install(from, to) {
  mkdirSync(path.dirname(to), { recursive: true });
  const staging = `${to}.partial`;
  copyFileSync(from, staging);
  chmodSync(staging, 0o755);
  renameSync(staging, to);
}

function buildTailscale(go) {
  const gobin = mkdtempSync(path.join(os.tmpdir(), "kiln-gobin-"));
  try {
    log(`building tailscaled + tailscale v${TAILSCALE_VERSION} (go install; a few minutes the first time)`);
    execFileSync(go, ["install", `tailscale.com/cmd/tailscaled@v${TAILSCALE_VERSION}`, `tailscale.com/cmd/tailscale@v${TAILSCALE_VERSION}`], {
      stdio: ["ignore", "inherit", "inherit"],
      env: goEnv(gobin),
    });
    install(path.join(gobin, "tailscaled"), binaryPath("tailscaled"));
    install(path.join(gobin, "tailscale"), binaryPath("tailscale"));
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
}

// `go install github.com/juanfont/headscale/cmd/headscale@v…` fails here: the proxy refuses the module's
// version list (403 on the deprecation check). A throwaway wrapper module that requires it builds fine.
function buildHeadscale(go) {
  const workdir = mkdtempSync(path.join(os.tmpdir(), "kiln-headscale-build-"));
  try {
    log(`building headscale v${HEADSCALE_VERSION} (wrapper module; a few minutes the first time)`);
    const env = goEnv(workdir);
    const run = (args) => execFileSync(go, args, { cwd: workdir, stdio: ["ignore", "inherit", "inherit"], env });
    writeFileSync(path.join(workdir, "go.mod"), "module kiln.local/headscale-build\n\ngo 1.26\n");
    run(["get", `github.com/juanfont/headscale/cmd/headscale@v${HEADSCALE_VERSION}`]);
    const output = path.join(workdir, "headscale");
    run(["build", "-o", output, "github.com/juanfont/headscale/cmd/headscale"]);
    install(output, binaryPath("headscale"));
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}

/** Builds what is missing. Returns the binaries' paths, or throws when Go is absent or a build fails. */
export function ensureTailnetToolchain() {
  const missing = missingBinaries();
  if (missing.length > 0) {
    const go = goBinary();
    if (!go) throw new Error(`Go is needed to build ${missing.join(", ")} and was not found on PATH`);
    if (missing.includes("tailscaled") || missing.includes("tailscale")) buildTailscale(go);
    if (missing.includes("headscale")) buildHeadscale(go);
    const still = missingBinaries();
    if (still.length > 0) throw new Error(`after building, ${still.join(", ")} still missing or at the wrong version`);
  }
  return { tailscaled: binaryPath("tailscaled"), tailscale: binaryPath("tailscale"), headscale: binaryPath("headscale") };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    const missing = missingBinaries();
    if (missing.length > 0) {
      log(`missing or wrong version: ${missing.join(", ")}; run: node tailnet/scripts/toolchain.mjs`);
      process.exit(1);
    }
    process.stdout.write(`${binDir}\n`);
  } else {
    const started = Date.now();
    const paths = ensureTailnetToolchain();
    log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const [name, file] of Object.entries(paths)) process.stdout.write(`${name}=${file}\n`);
  }
}
