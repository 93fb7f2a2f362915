/**
 * Interactive-access benchmark: what a person at a terminal or an scp prompt gets through
 * Kiln (browser/CLI → kiln server → relay tunnel → kiln-daemon), in one run.
 *
 *   npx tsx bench/interactive.ts [--quick] [--strict]
 *
 * 1. Keystroke echo through the web-terminal path: a WebSocket client types one byte into a
 *    PTY (running `cat`, so the tty echoes it) and times until the byte comes back.
 * 2. PTY output throughput: a `yes` flood read as fast as possible over the same WebSocket,
 *    with the RSS of the server and the daemon sampled; then a stalled reader, to show the
 *    flood is throttled instead of buffered.
 * 3. scp throughput through `kiln config-ssh` (OpenSSH client → kiln ssh --stdio → tunnel →
 *    the daemon's SSH server) versus a stock OpenSSH sshd on loopback, both directions; and
 *    sshd again on AES-GCM, the cipher `kiln config-ssh` puts first (a diagnostic row).
 *
 * Real processes throughout: a `kiln server` (embedded PGlite), the `kiln` CLI, a local
 * workspace's kiln-daemon, OpenSSH's ssh/scp/sshd. Prints a table, PASS/FAIL per target and
 * one JSON line last. Exit status is 0 unless something broke, or with --strict, a target
 * failed. Needs openssh-server (sshd) for the baseline (`apt-get install openssh-server`).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { kiln, killDaemonsOf, startKilnServer, type KilnServerProcess } from "../control-plane/src/testing/kiln-process.ts";
import { freePort } from "../control-plane/src/testing/postgres-cluster.ts";
import { openTerminal } from "../control-plane/src/testing/terminal-client.ts";

const TARGETS = { echoP99Ms: 10, ptyMegabytesPerSecond: 50, scpRatio: 0.5 };

interface Plan {
  echoWarmup: number;
  echoSamples: number;
  floodBytes: number;
  stallSeconds: number;
  scpBytes: number;
  scpRuns: number;
}

const PLANS: Record<"full" | "quick", Plan> = {
  full: { echoWarmup: 200, echoSamples: 2000, floodBytes: 256 * 1024 * 1024, stallSeconds: 5, scpBytes: 256 * 1024 * 1024, scpRuns: 3 },
  quick: { echoWarmup: 50, echoSamples: 300, floodBytes: 64 * 1024 * 1024, stallSeconds: 2, scpBytes: 64 * 1024 * 1024, scpRuns: 1 },
};

// ---------------------------------------------------------------- small helpers

const cleanups: (() => Promise<void> | void)[] = [];
async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (error) {
      process.stderr.write(`cleanup failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(130)));

function temporaryDirectory(prefix: string, base = os.tmpdir()): string {
  const directory = mkdtempSync(path.join(base, prefix));
  cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)]!;
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

async function mustRun(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const result = await run(command, args, env);
  if (result.code !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.code}): ${result.stderr || result.stdout}`);
  return result.ms;
}

function rssMegabytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : 0;
}

function daemonPidOf(url: string): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(`KILN_URL=${url}`)) return Number(entry);
    } catch {
      // not ours
    }
  }
  throw new Error("kiln-daemon process not found");
}

/** Samples the RSS of some processes every 50 ms until stopped; returns each one's peak. */
function sampleRss(pids: Record<string, number>): () => Record<string, number> {
  const peaks: Record<string, number> = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, rssMegabytes(pid)]));
  const timer = setInterval(() => {
    for (const [name, pid] of Object.entries(pids)) peaks[name] = Math.max(peaks[name]!, rssMegabytes(pid));
  }, 50);
  return () => {
    clearInterval(timer);
    return peaks;
  };
}

// ---------------------------------------------------------------- web terminal

async function measureEcho(server: KilnServerProcess, token: string, plan: Plan): Promise<{ p50: number; p99: number; max: number; n: number }> {
  const terminal = await openTerminal(server.url, token, "dev", { command: "exec cat", cols: "80", rows: "24" });
  let waiting: { byte: number; resolve: () => void } | null = null;
  terminal.onBytes((chunk) => {
    if (waiting && chunk.includes(waiting.byte)) {
      const done = waiting.resolve;
      waiting = null;
      done();
    }
  });
  const samples: number[] = [];
  const letters = "abcdefghijklmnopqrstuvwxyz";
  for (let index = 0; index < plan.echoWarmup + plan.echoSamples; index++) {
    // One line per 64 keys keeps the tty's line buffer (4 KiB) from filling.
    const key = index % 64 === 63 ? "\r" : letters[index % letters.length]!;
    const byte = key === "\r" ? 0x0a : key.charCodeAt(0);
    const echoed = new Promise<void>((resolve) => (waiting = { byte, resolve }));
    const started = performance.now();
    terminal.ws.send(Buffer.from(key));
    await echoed;
    if (index >= plan.echoWarmup) samples.push(performance.now() - started);
  }
  terminal.ws.close();
  await terminal.closed;
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), max: samples.at(-1)!, n: samples.length };
}

async function measureFlood(server: KilnServerProcess, token: string, plan: Plan, pids: Record<string, number>) {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, rssMegabytes(pid)]));
  const stop = sampleRss(pids);
  const started = performance.now();
  const terminal = await openTerminal(server.url, token, "dev", { command: `yes | head -c ${plan.floodBytes}`, cols: "200", rows: "50" });
  await terminal.closed;
  const seconds = (performance.now() - started) / 1000;
  const peaks = stop();
  const bytes = terminal.received();
  if (bytes < plan.floodBytes) throw new Error(`flood delivered ${bytes} of ${plan.floodBytes} bytes`);

  // A reader that stops reading: output must be throttled at the source, not pile up in memory.
  const stalledBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, rssMegabytes(pid)]));
  const stall = await openTerminal(server.url, token, "dev", { command: "exec yes" });
  stall.ws.pause();
  const stopStall = sampleRss(pids);
  await new Promise((resolve) => setTimeout(resolve, plan.stallSeconds * 1000));
  const stalledPeaks = stopStall();
  stall.ws.terminate();
  await stopYes(server, token);
  return {
    megabytesPerSecond: bytes / 1e6 / seconds,
    bytes,
    seconds,
    rss: Object.fromEntries(Object.keys(pids).map((name) => [name, { before: before[name]!, peak: peaks[name]! }])),
    stalled: Object.fromEntries(Object.keys(pids).map((name) => [name, { before: stalledBefore[name]!, peak: stalledPeaks[name]! }])),
  };
}

/** Ends the stalled session's program from inside the workspace (its viewer is gone; the session would run on). */
async function stopYes(server: KilnServerProcess, token: string): Promise<void> {
  await fetch(`${server.url}/api/v1/workspaces/dev/exec`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ command: "pkill -x yes || true" }),
  }).then((response) => response.text());
}

// ---------------------------------------------------------------- scp

interface ScpResult {
  upload: number;
  download: number;
}

async function scpThroughput(label: string, bytes: number, runs: number, file: string, upload: (remote: string) => string[], download: (remote: string, local: string) => string[], env: NodeJS.ProcessEnv, verify: string): Promise<ScpResult> {
  const uploads: number[] = [];
  const downloads: number[] = [];
  const back = `${file}.back`;
  for (let index = 0; index < runs; index++) {
    const remote = `bench-${index}.bin`;
    uploads.push(bytes / 1e6 / ((await mustRun("scp", upload(remote), env)) / 1000));
    rmSync(back, { force: true });
    downloads.push(bytes / 1e6 / ((await mustRun("scp", download(remote, back), env)) / 1000));
    if (hashOf(back) !== verify) throw new Error(`${label}: downloaded file differs from the original`);
  }
  return { upload: median(uploads), download: median(downloads) };
}

function hashOf(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

async function startSshd(directory: string): Promise<{ port: number; key: string }> {
  const sshd = "/usr/sbin/sshd";
  if (!existsSync(sshd)) throw new Error("sshd not found: install openssh-server (Debian: apt-get install openssh-server) for the scp baseline");
  const port = await freePort();
  const hostKey = path.join(directory, "host_key");
  const clientKey = path.join(directory, "client_key");
  await mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  await mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", clientKey]);
  writeFileSync(path.join(directory, "authorized_keys"), readFileSync(`${clientKey}.pub`));
  const config = path.join(directory, "sshd_config");
  writeFileSync(config, [
    `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${hostKey}`, `AuthorizedKeysFile ${path.join(directory, "authorized_keys")}`,
    "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
    `PidFile ${path.join(directory, "sshd.pid")}`, "Subsystem sftp /usr/lib/openssh/sftp-server", "",
  ].join("\n"));
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const child = spawn(sshd, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  let errors = "";
  child.stderr.on("data", (chunk) => (errors += chunk));
  cleanups.push(() => {
    child.kill("SIGTERM");
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited: ${errors}`);
    const probe = await run("ssh", ["-i", clientKey, "-p", String(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", `${os.userInfo().username}@127.0.0.1`, "true"]);
    if (probe.code === 0) return { port, key: clientKey };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`sshd did not accept a login: ${errors}`);
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const flags = { quick: process.argv.includes("--quick"), strict: process.argv.includes("--strict") };
  const plan = PLANS[flags.quick ? "quick" : "full"];
  const configDir = temporaryDirectory("kiln-bench-cli-");
  const env = { ...process.env, KILN_CONFIG_DIR: configDir };

  log("starting kiln server, logging in, creating workspace 'dev'…");
  const server = await startKilnServer({ env: { KILN_LOG_LEVEL: "warn" } });
  cleanups.push(async () => {
    await server.stop();
    killDaemonsOf(server.url);
    rmSync(server.dataDir, { recursive: true, force: true });
  });
  const cli = async (args: string[]) => {
    const result = await kiln(args, { configDir, timeoutMs: 180_000 });
    if (result.code !== 0) throw new Error(`kiln ${args.join(" ")}: ${result.stderr}`);
    return result;
  };
  await cli(["login", server.url, "--first-user-email", "bench@example.com", "--first-user-username", "bench", "--first-user-password", "password-123"]);
  const token = (JSON.parse(readFileSync(path.join(configDir, "session.json"), "utf8")) as { token: string }).token;
  await cli(["create", "dev", "--template", "local"]);
  const sshDirectory = temporaryDirectory("kiln-bench-ssh-");
  const sshConfig = path.join(sshDirectory, "config");
  await cli(["config-ssh", "--ssh-config-file", sshConfig, "--yes"]);
  const pids = { server: server.child.pid!, daemon: daemonPidOf(server.url) };

  log(`keystroke echo: ${plan.echoSamples} keys through the web terminal…`);
  const echo = await measureEcho(server, token, plan);
  log(`PTY flood: ${plan.floodBytes / 1024 / 1024} MiB of 'yes'…`);
  const flood = await measureFlood(server, token, plan, pids);

  // The same flood into a local PTY read by `script` (C): the machine's own ceiling right now.
  const localFloodMs = await mustRun("sh", ["-c", `script -qfc 'yes | head -c ${plan.floodBytes}' /dev/null > /dev/null`]);
  // The tty turns each "y\n" into "y\r\n": 1.5 terminal bytes per byte of `yes`, as the Kiln flood counts them.
  const localFlood = (plan.floodBytes * 1.5) / 1e6 / (localFloodMs / 1000);

  log(`scp ${plan.scpBytes / 1024 / 1024} MiB × ${plan.scpRuns}, kiln and sshd…`);
  const dataDirectory = temporaryDirectory("kiln-bench-scp-", existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir());
  const file = path.join(dataDirectory, "payload.bin");
  await mustRun("sh", ["-c", `head -c ${plan.scpBytes} /dev/urandom > '${file}'`]);
  const digest = hashOf(file);
  const setupMs = median(await Promise.all([0, 1, 2].map(async () => (await mustRun("ssh", ["-F", sshConfig, "kiln.dev", "true"], env)))));
  const kilnScp = await scpThroughput("kiln", plan.scpBytes, plan.scpRuns, file,
    (remote) => ["-q", "-F", sshConfig, file, `kiln.dev:${remote}`],
    (remote, local) => ["-q", "-F", sshConfig, `kiln.dev:${remote}`, local], env, digest);
  const sshd = await startSshd(temporaryDirectory("kiln-bench-sshd-"));
  const remoteDirectory = temporaryDirectory("kiln-bench-sshd-files-", path.dirname(dataDirectory));
  const openSshOptions = ["-q", "-i", sshd.key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"];
  const sshdOptions = [...openSshOptions, "-P", String(sshd.port)];
  const target = `${os.userInfo().username}@127.0.0.1`;
  const openSsh = await scpThroughput("sshd", plan.scpBytes, plan.scpRuns, file,
    (remote) => [...sshdOptions, file, `${target}:${remoteDirectory}/${remote}`],
    (remote, local) => [...sshdOptions, `${target}:${remoteDirectory}/${remote}`, local], env, digest);
  // Diagnostic: sshd on the cipher `kiln config-ssh` puts first (stock clients pick ChaCha20-Poly1305,
  // the baseline above); shows how much of the gap the cipher choice is.
  const gcm = ["-c", "aes128-gcm@openssh.com"];
  const openSshGcm = await scpThroughput("sshd, AES-GCM", plan.scpBytes, plan.scpRuns, file,
    (remote) => [...sshdOptions, ...gcm, file, `${target}:${remoteDirectory}/${remote}`],
    (remote, local) => [...sshdOptions, ...gcm, `${target}:${remoteDirectory}/${remote}`, local], env, digest);
  // The PTY flood through OpenSSH (sshd reads its PTY, ssh -tt prints it): what stock tooling gets here.
  log(`PTY flood through sshd: ${plan.floodBytes / 1024 / 1024} MiB of 'yes'…`);
  const sshdFloodMs = await mustRun("sh", ["-c", `ssh -tt ${[...openSshOptions, "-p", String(sshd.port)].map((option) => `'${option}'`).join(" ")} ${target} 'yes | head -c ${plan.floodBytes}' > /dev/null`]);
  const sshdFlood = (plan.floodBytes * 1.5) / 1e6 / (sshdFloodMs / 1000);

  const uploadRatio = kilnScp.upload / openSsh.upload;
  const downloadRatio = kilnScp.download / openSsh.download;
  const floodGrowth = Math.max(...Object.values(flood.rss).map((entry) => entry.peak - entry.before));
  const stallGrowth = Math.max(...Object.values(flood.stalled).map((entry) => entry.peak - entry.before));
  const targets = [
    { name: "keystroke echo p99", actual: echo.p99, limit: TARGETS.echoP99Ms, unit: "ms", pass: echo.p99 <= TARGETS.echoP99Ms },
    { name: "PTY output throughput", actual: flood.megabytesPerSecond, limit: TARGETS.ptyMegabytesPerSecond, unit: "MB/s", pass: flood.megabytesPerSecond >= TARGETS.ptyMegabytesPerSecond },
    { name: "scp upload vs sshd", actual: uploadRatio, limit: TARGETS.scpRatio, unit: "×", pass: uploadRatio >= TARGETS.scpRatio },
    { name: "scp download vs sshd", actual: downloadRatio, limit: TARGETS.scpRatio, unit: "×", pass: downloadRatio >= TARGETS.scpRatio },
  ];

  const fixed = (value: number, digits = 1) => value.toFixed(digits);
  const lines = [
    "",
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, node ${process.version}, load ${os.loadavg().map((value) => value.toFixed(1)).join(" ")}`,
    "",
    "| measurement | result |",
    "|---|---|",
    `| keystroke echo, web terminal (n=${echo.n}) | p50 ${fixed(echo.p50, 2)} ms, p99 ${fixed(echo.p99, 2)} ms, max ${fixed(echo.max, 1)} ms |`,
    `| PTY output, \`yes\` flood (${fixed(flood.bytes / 1e6, 0)} MB) | ${fixed(flood.megabytesPerSecond)} MB/s |`,
    `| same flood into a local PTY read by \`script\` (no Kiln; the machine's ceiling) | ${fixed(localFlood)} MB/s |`,
    `| same flood through OpenSSH (\`ssh -tt\` to the sshd below) | ${fixed(sshdFlood)} MB/s |`,
    `| RSS during flood (peak − before) | server +${fixed(flood.rss.server!.peak - flood.rss.server!.before)} MiB, daemon +${fixed(flood.rss.daemon!.peak - flood.rss.daemon!.before)} MiB |`,
    `| RSS with a stalled reader, ${plan.stallSeconds} s of \`yes\` | server +${fixed(flood.stalled.server!.peak - flood.stalled.server!.before)} MiB, daemon +${fixed(flood.stalled.daemon!.peak - flood.stalled.daemon!.before)} MiB |`,
    `| ssh connection setup via \`kiln ssh --stdio\` (\`ssh kiln.dev true\`) | ${fixed(setupMs, 0)} ms |`,
    `| scp upload ${plan.scpBytes / 1024 / 1024} MiB: kiln / sshd | ${fixed(kilnScp.upload)} / ${fixed(openSsh.upload)} MB/s (${fixed(uploadRatio, 2)}×) |`,
    `| scp download ${plan.scpBytes / 1024 / 1024} MiB: kiln / sshd | ${fixed(kilnScp.download)} / ${fixed(openSsh.download)} MB/s (${fixed(downloadRatio, 2)}×) |`,
    `| diagnostic: sshd with \`-c aes128-gcm@openssh.com\` (kiln's cipher), up / down | ${fixed(openSshGcm.upload)} / ${fixed(openSshGcm.download)} MB/s (kiln ${fixed(kilnScp.upload / openSshGcm.upload, 2)}× / ${fixed(kilnScp.download / openSshGcm.download, 2)}×) |`,
    "",
    ...targets.map((target) => `${target.pass ? "PASS" : "FAIL"}  ${target.name}: ${fixed(target.actual, 2)} ${target.unit} (target ${target.unit === "ms" ? "≤" : "≥"} ${target.limit} ${target.unit})`),
    "",
  ];
  process.stdout.write(lines.join("\n"));
  process.stdout.write(`${JSON.stringify({ bench: "interactive", plan: flags.quick ? "quick" : "full", echo, flood: { megabytesPerSecond: flood.megabytesPerSecond, localPtyMegabytesPerSecond: localFlood, sshdPtyMegabytesPerSecond: sshdFlood, bytes: flood.bytes, rssGrowthMiB: floodGrowth, stalledRssGrowthMiB: stallGrowth }, scp: { kiln: kilnScp, sshd: openSsh, sshdAesGcm: openSshGcm, uploadRatio, downloadRatio, setupMs }, targets })}\n`);
  return flags.strict && targets.some((target) => !target.pass) ? 1 : 0;
}

let status = 1;
try {
  status = await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
} finally {
  await cleanUp();
}
process.exit(status);
