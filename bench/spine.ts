/**
 * Spine benchmark: what the relay tunnel (control plane → HTTP/2 on the daemon's upgraded
 * socket → real kiln-daemon) costs next to plain loopback baselines, in one run. A second
 * daemon on the WebSocket framing (the fallback for proxies that pass nothing else) gives
 * diagnostic rows.
 *
 *   npx tsx bench/spine.ts [--quick] [--strict]
 *
 * Prints a table, PASS/FAIL per target, and one JSON line last. Exit status is 0 unless
 * something broke, or with --strict, a target failed.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { RelayServer, type AgentConnection, type RelayConnection } from "../tailnet/src/index.ts";
import { machine, megabytesPerSecond, sampleInterleaved, summarize, type Phase, type Samples, type Summary } from "./lib/measure.ts";
import {
  STREAM_FILE, STREAM_FILE_BYTES, checkReadFile, describeError, executeTrue as tunnelExecuteTrue, expectOk, milliseconds, rawHttpGet,
  readFile as tunnelReadFile, readRawTcp, readStream as tunnelReadStream, startLoopbackPeer, writeWorkspace,
} from "./lib/daemon-workload.ts";
import { Resources, runBenchmark } from "./lib/resources.ts";

const here = dirname(fileURLToPath(import.meta.url));
const daemonBin = resolve(here, "../workspace-daemon/bin/kiln-daemon.mjs");

const AGENT_ID = "bench-agent";
const WEBSOCKET_AGENT_ID = "bench-agent-websocket";

interface Plan {
  latency: Phase;
  process: Phase;
  stream: Phase;
}

/** Sized so a full run stays well under a minute on 2 cores. */
const PLANS: Record<"full" | "quick", Plan> = {
  full: {
    latency: { warmup: 200, measured: 1500, rounds: 10 },
    process: { warmup: 20, measured: 150, rounds: 10 },
    stream: { warmup: 2, measured: 5, rounds: 5 },
  },
  quick: {
    latency: { warmup: 100, measured: 400, rounds: 4 },
    process: { warmup: 5, measured: 40, rounds: 4 },
    stream: { warmup: 1, measured: 3, rounds: 3 },
  },
};

interface Flags {
  quick: boolean;
  strict: boolean;
}

interface Row {
  key: string;
  label: string;
  summary: Summary;
  /** Runs that threw (warm-up included); they are not in the summary. */
  errors: number;
  /** Bytes moved per run, for throughput rows. */
  bytes?: number;
  /** Filled in once the baseline is known, e.g. "6.1× raw HTTP". */
  comparison?: string;
}

interface Target {
  name: string;
  actual: number;
  limit: number;
  unit: string;
  /** "max": actual must not exceed limit; "min": must reach it. */
  kind: "max" | "min";
}

function parseFlags(argv: string[]): Flags {
  const known = new Set(["--quick", "--strict", "--help"]);
  const unknown = argv.filter((argument) => !known.has(argument));
  if (argv.includes("--help") || unknown.length > 0) {
    if (unknown.length > 0) process.stderr.write(`unknown argument: ${unknown.join(" ")}\n`);
    process.stderr.write("usage: npx tsx bench/spine.ts [--quick] [--strict]\n");
    process.exit(unknown.length > 0 ? 2 : 0);
  }
  return { quick: argv.includes("--quick"), strict: argv.includes("--strict") };
}

interface ControlPlane {
  url: string;
  relay: RelayServer;
}

/** The control-plane side: a relay endpoint that knows one token per agent, and a lifecycle endpoint that answers 204. */
async function startControlPlane(resources: Resources, tokens: Map<string, string>): Promise<ControlPlane> {
  const relay = new RelayServer({ authenticate: async (given) => (tokens.has(given) ? { agentId: tokens.get(given) as string } : null) });
  const server = http.createServer((request, response) => {
    if (request.method === "POST" && request.url === "/api/v1/agent/lifecycle") {
      request.resume();
      request.once("end", () => response.writeHead(204).end());
      return;
    }
    response.writeHead(404).end();
  });
  server.on("upgrade", (request, socket, head) => {
    if (!relay.handleUpgrade(request, socket, head)) socket.destroy();
  });
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  resources.defer("control plane", async () => {
    await relay.close();
    server.closeAllConnections();
    await new Promise((closed) => server.close(closed));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, relay };
}

/** Starts the real kiln-daemon binary and waits for it to dial in. */
async function startDaemon(
  resources: Resources,
  controlPlane: ControlPlane,
  options: { agentId: string; token: string; framing: "direct" | "websocket"; workdir: string; stateDir: string; logFile: string },
): Promise<AgentConnection> {
  const log = openSync(options.logFile, "a");
  const child = resources.child(
    "kiln-daemon",
    spawn(process.execPath, [daemonBin], {
      stdio: ["ignore", log, log],
      env: {
        ...process.env,
        KILN_AGENT_TOKEN: options.token,
        KILN_URL: controlPlane.url,
        KILN_WORKDIR: options.workdir,
        // Keeps the daemon's host key and other state out of ~/.kiln.
        KILN_STATE_DIR: options.stateDir,
        KILN_LOG_LEVEL: "info",
        KILN_RELAY_FRAMING: options.framing,
      },
    }),
  );
  closeSync(log);
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code, signal) =>
      reject(new Error(`kiln-daemon exited early (code ${code}, signal ${signal}); log:\n${readFileSync(options.logFile, "utf8")}`)),
    ),
  );
  exited.catch(() => {});
  const connection = await Promise.race([controlPlane.relay.dial(options.agentId, { timeoutMs: 30_000 }), exited]);
  const framing = (connection as RelayConnection).framing;
  if (framing !== options.framing) throw new Error(`kiln-daemon ${options.agentId} connected with ${framing} framing, expected ${options.framing}`);
  return connection;
}

function spawnTrue(): Promise<void> {
  return new Promise<void>((done, fail) => {
    const child = spawn("sh", ["-c", "true"]);
    child.once("error", fail);
    // "close" (exit and pipes closed) is also what the daemon waits for before answering.
    child.once("close", (code) => (code === 0 ? done() : fail(new Error(`sh -c true exited ${code}`))));
  });
}

async function tunnelInfo(connection: AgentConnection): Promise<void> {
  const response = await connection.fetch("/v1/info");
  await expectOk(response, "info");
  await response.arrayBuffer();
}

function printTable(rows: Row[]): void {
  const header = ["scenario", "n", "errors", "p50 ms", "p99 ms", "MB/s (p50)", "compared"];
  const cells = rows.map((row) => [
    row.label,
    String(row.summary.n),
    String(row.errors),
    milliseconds(row.summary.p50),
    milliseconds(row.summary.p99),
    row.bytes === undefined ? "" : megabytesPerSecond(row.bytes, row.summary.p50).toFixed(0),
    row.comparison ?? "",
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => (line[column] as string).length)));
  const format = (line: string[]) =>
    `| ${line.map((cell, column) => (column === 0 || column === 6 ? cell.padEnd(widths[column] as number) : cell.padStart(widths[column] as number))).join(" | ")} |`;
  console.log(format(header));
  console.log(`|${widths.map((width, column) => (column === 0 || column === 6 ? `:${"-".repeat(width + 1)}` : `${"-".repeat(width + 1)}:`)).join("|")}|`);
  for (const line of cells) console.log(format(line));
}

function passes(target: Target): boolean {
  return target.kind === "max" ? target.actual <= target.limit : target.actual >= target.limit;
}

async function main(resources: Resources, flags: Flags): Promise<boolean> {
  const started = performance.now();
  const plan = flags.quick ? PLANS.quick : PLANS.full;
  const host = machine();
  const loadAtStart = os.loadavg()[0] as number;
  console.log(`spine benchmark${flags.quick ? " (--quick)" : ""}: node ${host.node}, ${host.os}, ${host.cpus} CPUs (${host.cpu_model}), ${host.memory_gib} GiB`);
  console.log(`load average (1 min) ${loadAtStart.toFixed(2)}: other processes on the machine skew everything below`);

  const root = resources.temporaryDirectory("kiln-bench-spine-");
  const workdir = join(root, "workspace");
  writeWorkspace(workdir);
  const token = randomBytes(24).toString("hex");
  const webSocketToken = randomBytes(24).toString("hex");

  const ports = await startLoopbackPeer(resources, join(workdir, STREAM_FILE));
  const controlPlane = await startControlPlane(resources, new Map([[token, AGENT_ID], [webSocketToken, WEBSOCKET_AGENT_ID]]));
  const connection = await startDaemon(resources, controlPlane, {
    agentId: AGENT_ID, token, framing: "direct", workdir, stateDir: join(root, "state"), logFile: join(root, "daemon.log"),
  });
  const webSocketConnection = await startDaemon(resources, controlPlane, {
    agentId: WEBSOCKET_AGENT_ID, token: webSocketToken, framing: "websocket", workdir, stateDir: join(root, "state-websocket"), logFile: join(root, "daemon-websocket.log"),
  });
  await checkReadFile(connection);
  await checkReadFile(webSocketConnection);
  console.log(`daemon connected; measuring (workdir ${workdir})\n`);

  interface Scenario {
    key: string;
    label: string;
    operation: () => Promise<void>;
    bytes?: number;
  }
  const measure = async (phase: Phase, scenarios: Scenario[]): Promise<Row[]> => {
    const results = await sampleInterleaved(phase, phase.rounds, scenarios.map((scenario) => scenario.operation));
    return scenarios.map((scenario, index) => {
      const samples = results[index] as Samples;
      const row: Row = { key: scenario.key, label: scenario.label, summary: summarize(samples.durations), errors: samples.errors, bytes: scenario.bytes };
      const failures = samples.firstError ? `; ${samples.errors} runs failed, first: ${describeError(samples.firstError)}` : "";
      process.stderr.write(`  ${scenario.label}: p50 ${milliseconds(row.summary.p50)} ms${failures}\n`);
      return row;
    });
  };

  const [rawHttp, ping, info, readFile, webSocketReadFile] = (await measure(plan.latency, [
    { key: "raw_http", label: "raw HTTP/1.1 keep-alive GET (child process)", operation: rawHttpGet(ports.httpPort) },
    { key: "tunnel_ping", label: "tunnel HTTP/2 PING (diagnostic)", operation: () => connection.ping().then(() => {}) },
    { key: "tunnel_info", label: "tunnel GET /v1/info (diagnostic)", operation: () => tunnelInfo(connection) },
    { key: "tunnel_read_file", label: "tunnel read_file 4 KiB", operation: () => tunnelReadFile(connection) },
    { key: "websocket_read_file", label: "… WebSocket framing (diagnostic)", operation: () => tunnelReadFile(webSocketConnection) },
  ])) as [Row, Row, Row, Row, Row];
  const [spawnDirect, execute] = (await measure(plan.process, [
    { key: "spawn_true", label: "spawn sh -c true (bench process)", operation: spawnTrue },
    { key: "tunnel_execute_true", label: "tunnel execute true", operation: () => tunnelExecuteTrue(connection) },
  ])) as [Row, Row];
  const [rawTcp, stream, webSocketStream] = (await measure(plan.stream, [
    { key: "raw_tcp_64mib", label: "raw TCP 64 MiB (child process)", operation: () => readRawTcp(ports.tcpPort, STREAM_FILE_BYTES), bytes: STREAM_FILE_BYTES },
    { key: "tunnel_raw_64mib", label: "tunnel GET /v1/files/raw 64 MiB", operation: () => tunnelReadStream(connection), bytes: STREAM_FILE_BYTES },
    { key: "websocket_raw_64mib", label: "… WebSocket framing (diagnostic)", operation: () => tunnelReadStream(webSocketConnection), bytes: STREAM_FILE_BYTES },
  ])) as [Row, Row, Row];

  const readRatio = readFile.summary.p50 / rawHttp.summary.p50;
  const executeRatio = execute.summary.p50 / spawnDirect.summary.p50;
  const streamShare = rawTcp.summary.p50 / stream.summary.p50;
  ping.comparison = `${(ping.summary.p50 / rawHttp.summary.p50).toFixed(1)}× raw HTTP`;
  info.comparison = `${(info.summary.p50 / rawHttp.summary.p50).toFixed(1)}× raw HTTP`;
  readFile.comparison = `${readRatio.toFixed(1)}× raw HTTP`;
  webSocketReadFile.comparison = `${(webSocketReadFile.summary.p50 / rawHttp.summary.p50).toFixed(1)}× raw HTTP`;
  execute.comparison = `${executeRatio.toFixed(2)}× spawn, +${milliseconds(execute.summary.p50 - spawnDirect.summary.p50)} ms`;
  stream.comparison = `${(streamShare * 100).toFixed(0)} % of raw TCP`;
  webSocketStream.comparison = `${((rawTcp.summary.p50 / webSocketStream.summary.p50) * 100).toFixed(0)} % of raw TCP`;
  const rows = [rawHttp, ping, info, readFile, webSocketReadFile, spawnDirect, execute, rawTcp, stream, webSocketStream];

  const targets: Target[] = [
    { name: "read_file p50 ≤ 1 ms", actual: readFile.summary.p50, limit: 1, unit: "ms", kind: "max" },
    { name: "read_file p50 ≤ 3 × raw HTTP p50", actual: readFile.summary.p50, limit: 3 * rawHttp.summary.p50, unit: "ms", kind: "max" },
    { name: "execute p50 ≤ 1.5 × spawn p50 + 2 ms", actual: execute.summary.p50, limit: 1.5 * spawnDirect.summary.p50 + 2, unit: "ms", kind: "max" },
    { name: "64 MiB stream ≥ 50 % of raw TCP", actual: megabytesPerSecond(STREAM_FILE_BYTES, stream.summary.p50), limit: 0.5 * megabytesPerSecond(STREAM_FILE_BYTES, rawTcp.summary.p50), unit: "MB/s", kind: "min" },
    { name: "no failed requests", actual: rows.reduce((total, row) => total + row.errors, 0), limit: 0, unit: "errors", kind: "max" },
  ];

  console.log();
  printTable(rows);
  console.log();
  for (const target of targets) {
    const format = (value: number) => (target.unit === "ms" ? `${milliseconds(value)} ms` : `${value.toFixed(0)} ${target.unit}`);
    console.log(`${passes(target) ? "PASS" : "FAIL"}  ${target.name}: ${format(target.actual)} (${target.kind === "max" ? "limit" : "need"} ${format(target.limit)})`);
  }
  const allPass = targets.every(passes);
  const wallSeconds = (performance.now() - started) / 1000;
  const loadAtEnd = os.loadavg()[0] as number;
  console.log(`\n${allPass ? "all targets met" : "some targets missed"}; ${wallSeconds.toFixed(1)} s wall; load average (1 min) ${loadAtStart.toFixed(2)} → ${loadAtEnd.toFixed(2)}\n`);

  const round = (value: number) => Math.round(value * 1000) / 1000;
  const results = Object.fromEntries(
    rows.map((row) => [
      row.key,
      {
        n: row.summary.n,
        errors: row.errors,
        p50_ms: round(row.summary.p50),
        p99_ms: round(row.summary.p99),
        mean_ms: round(row.summary.mean),
        ...(row.bytes === undefined ? {} : { bytes: row.bytes, mb_per_s_p50: round(megabytesPerSecond(row.bytes, row.summary.p50)) }),
      },
    ]),
  );
  console.log(
    JSON.stringify({
      benchmark: "spine",
      quick: flags.quick,
      machine: host,
      load_average_1m: { start: round(loadAtStart), end: round(loadAtEnd) },
      results,
      ratios: { read_file_vs_raw_http_p50: round(readRatio), execute_vs_spawn_p50: round(executeRatio), stream_vs_raw_tcp: round(streamShare) },
      targets: targets.map((target) => ({ name: target.name, actual: round(target.actual), limit: round(target.limit), unit: target.unit, pass: passes(target) })),
      pass: allPass,
      wall_s: round(wallSeconds),
    }),
  );
  return allPass;
}

const flags = parseFlags(process.argv.slice(2));
await runBenchmark("spine", flags.strict, (resources) => main(resources, flags));
