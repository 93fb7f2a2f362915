// Finds (and in strict mode installs) what the test suite needs beyond Node: PostgreSQL and Chromium.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { ensureToolchain, goBinary, readToolchain } from "../../provisioner/scripts/toolchain.mjs";
import { ensureTailnetToolchain, missingBinaries as missingTailnetBinaries } from "../../tailnet/scripts/toolchain.mjs";

const log = (message) => process.stderr.write(`[prerequisites] ${message}\n`);

export function findPostgres() {
  const root = "/usr/lib/postgresql";
  const candidates = existsSync(root) ? readdirSync(root).map((version) => path.join(root, version, "bin")) : [];
  candidates.push(...(process.env.PATH ?? "").split(path.delimiter));
  return candidates.find((directory) => existsSync(path.join(directory, "initdb")) && existsSync(path.join(directory, "pg_ctl"))) ?? null;
}

function aptInstall(packages) {
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get")) return false;
  log(`installing ${packages.join(", ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  return spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], { stdio: "inherit", env }).status === 0;
}

/** Returns a list of problems; in strict mode a missing prerequisite is installed or reported as a problem. */
export function ensurePrerequisites({ strict }) {
  const problems = [];
  if (!process.env.KILN_TEST_POSTGRES_URL && !findPostgres()) {
    if (strict) aptInstall(["postgresql"]);
    if (!findPostgres()) {
      const message = "PostgreSQL (initdb/pg_ctl) not found; install it (Debian: apt-get install postgresql) or set KILN_TEST_POSTGRES_URL";
      if (strict) problems.push(message);
      else log(`${message}. Database tests will run on embedded PGlite only.`);
    }
  }
  // Interactive-access tests drive the real OpenSSH client (ssh, scp, sftp), tmux and curl;
  // bench/interactive.ts compares scp against a stock sshd (openssh-server).
  const onPath = (program) => (process.env.PATH ?? "").split(path.delimiter).some((directory) => existsSync(path.join(directory, program)));
  const interactiveTools = [["ssh", "openssh-client"], ["scp", "openssh-client"], ["sftp", "openssh-client"], ["tmux", "tmux"], ["curl", "curl"]];
  const missingTools = () => interactiveTools.filter(([program]) => !onPath(program));
  if (strict && (missingTools().length > 0 || !existsSync("/usr/sbin/sshd"))) aptInstall([...new Set([...missingTools().map(([, debian]) => debian), "openssh-server"])]);
  for (const [program, debian] of missingTools()) {
    const message = `${program} not found; install it (Debian: apt-get install ${debian})`;
    if (strict) problems.push(message);
    else log(`${message}. The interactive-access tests will fail.`);
  }
  if (strict && !existsSync("/usr/sbin/sshd")) problems.push("sshd not found; install it (Debian: apt-get install openssh-server); bench/interactive.ts needs it");
  // The dashboard's browser tests drive Debian's Chromium (never a downloaded browser).
  const chromium = process.env.KILN_CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(chromium)) {
    if (strict) aptInstall(["chromium"]);
    if (!existsSync(chromium)) {
      const message = `Chromium not found at ${chromium}; install it (Debian: apt-get install chromium) or set KILN_CHROMIUM`;
      if (strict) problems.push(message);
      else log(`!!! ${message}. The dashboard's browser tests will be SKIPPED. !!!`);
    }
  }
  // Terraform templates are tested with a pinned Terraform and Coder provider, built from source with Go.
  problems.push(...ensureTerraformToolchain({ strict }));
  // The tailnet tests run real tailscaled/tailscale and headscale, built from source with Go into .tools/bin.
  problems.push(...ensureTailnetBinaries({ strict }));
  if (process.getuid?.() === 0 && findPostgres() && spawnSync("id", ["-u", "postgres"]).status !== 0) {
    problems.push("running as root, but there is no 'postgres' user to own the throwaway test cluster (useradd --system postgres)");
  }
  return problems;
}

export function run(command, args, options = {}) {
  execFileSync(command, args, { stdio: "inherit", ...options });
}

/** Builds .tools/terraform when Go is present (a no-op once built); strict mode requires it. */
function ensureTerraformToolchain({ strict }) {
  const skipped = (message) => {
    if (strict) return [message];
    log(`!!! ${message}. The Terraform tests will be SKIPPED. !!!`);
    return [];
  };
  if (!goBinary()) {
    if (readToolchain()) return [];
    return skipped("Go (>= 1.26) not found, so the pinned Terraform toolchain cannot be built; install Go or run node provisioner/scripts/toolchain.mjs where Go is");
  }
  const started = Date.now();
  try {
    ensureToolchain();
  } catch (error) {
    return skipped(`building the Terraform toolchain failed: ${error.message}`);
  }
  log(`terraform toolchain ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return [];
}

/** Builds tailscaled, tailscale and headscale into .tools/bin when Go is present (a no-op once built); strict mode requires them. */
function ensureTailnetBinaries({ strict }) {
  const skipped = (message) => {
    if (strict) return [message];
    log(`!!! ${message}. The tailnet tests will be SKIPPED. !!!`);
    return [];
  };
  if (!goBinary()) {
    if (missingTailnetBinaries().length === 0) return [];
    return skipped("Go (>= 1.26) not found, so tailscaled/tailscale/headscale cannot be built; install Go or run node tailnet/scripts/toolchain.mjs where Go is");
  }
  const started = Date.now();
  try {
    ensureTailnetToolchain();
  } catch (error) {
    return skipped(`building the tailnet toolchain failed: ${error.message}`);
  }
  log(`tailnet toolchain ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return [];
}
