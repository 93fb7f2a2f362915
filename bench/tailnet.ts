/**
 * Tailnet benchmark: the daemon's API reached over the tailnet (embedded headscale + userspace
 * tailscaled, dialed through the control-plane node's SOCKS5 proxy), direct and forced through DERP,
 * next to the relay tunnel and plain loopback baselines, in one run; and how long a fresh workspace
 * node takes from its preauth key to the first request that works (join → reachable).
 *
 * First, create → reachable end to end (bench/tailnet/create-to-reachable.ts): an in-process `kiln server --tailnet`
 * without relay fallback, workspaces from the `local` template, POST → the first ping answered over the tailnet.
 * That server and its daemons are gone before the rest starts.
 *
 * One daemon (bench/tailnet/daemon.ts, a child process) serves the relay and its tailnet port. Two
 * workspace nodes front that port (userspace tailscaled forwards inbound tailnet TCP to 127.0.0.1 on the
 * same port): ws-direct, and ws-derp with TS_DEBUG_ALWAYS_USE_DERP=1. `tailscale ping` from both ends
 * checks, before and after the measurements, that the paths really are direct and DERP.
 *
 *   npx tsx bench/tailnet.ts [--quick] [--strict] [--create-only]
 *
 * Needs tailscaled, tailscale and headscale in .tools/bin (node tailnet/scripts/toolchain.mjs).
 * Prints a table, PASS/FAIL per target, and one JSON line last. Exit status is 0 unless something
 * broke, or with --strict, a target failed.
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import {
  CONTROL_PLANE_TAG,
  DAEMON_TAILNET_PORTS,
  Headscale,
  RelayServer,
  TailnetTransport,
  TailscaleNode,
  WORKSPACE_TAG,
  createCredential,
  defaultPolicy,
  type AgentConnection,
  type PeerPath,
  type Transport,
} from "../tailnet/src/index.ts";
import { machine, megabytesPerSecond, sampleInterleaved, summarize, type Iterations, type Phase, type Samples, type Summary } from "./lib/measure.ts";
import {
  STREAM_FILE, STREAM_FILE_BYTES, checkReadFile, describeError, executeTrue, milliseconds, rawHttpGet, readFile, readRawTcp, readStream,
  startLoopbackPeer, tsxExecArgv, writeWorkspace,
} from "./lib/daemon-workload.ts";
import { Resources, runBenchmark } from "./lib/resources.ts";
import { measureCreateToReachable, type CreateRun, type CreateSample } from "./tailnet/create-to-reachable.ts";
import type { DaemonMessage, DaemonStart } from "./tailnet/daemon.ts";

const here = dirname(fileURLToPath(import.meta.url));
const daemonScript = resolve(here, "tailnet/daemon.ts");
const bin = resolve(here, "../.tools/bin");
const binaries = { tailscaled: join(bin, "tailscaled"), tailscale: join(bin, "tailscale") };

const AGENT_ID = "bench-agent";
const DIRECT_NODE = "ws-direct";
const DERP_NODE = "ws-derp";
// Loopback DERP has no TLS.
const DERP_OVER_HTTP = { TS_DEBUG_USE_DERP_HTTP: "1" };
const FORCED_DERP = { ...DERP_OVER_HTTP, TS_DEBUG_ALWAYS_USE_DERP: "1" };
/** The issue's create → reachable budget; join → reachable is one part of it. */
const REACHABLE_BUDGET_MS = 5000;

interface Plan {
  latency: Phase;
  process: Phase;
  stream: Phase;
  /** Fresh workspace nodes joined after the measurements, besides the two the run uses. */
  extraJoins: number;
  /** Workspaces created through `kiln server --tailnet`, one at a time. */
  creates: Iterations;
}

/** Sized so a full run stays around two minutes on 2 shared cores (the DERP stream is the slow part). */
const PLANS: Record<"full" | "quick", Plan> = {
  full: {
    latency: { warmup: 100, measured: 1000, rounds: 10 },
    process: { warmup: 10, measured: 100, rounds: 5 },
    stream: { warmup: 1, measured: 5, rounds: 5 },
    extraJoins: 3,
    creates: { warmup: 1, measured: 5 },
  },
  quick: {
    latency: { warmup: 50, measured: 300, rounds: 3 },
    process: { warmup: 5, measured: 30, rounds: 3 },
    stream: { warmup: 1, measured: 2, rounds: 2 },
    extraJoins: 1,
    creates: { warmup: 1, measured: 2 },
  },
};

interface Flags {
  quick: boolean;
  strict: boolean;
  /** Only the create → reachable phase. */
  createOnly: boolean;
}

interface Row {
  key: string;
  label: string;
  summary: Summary;
  /** Runs that threw (warm-up included); they are not in the summary. */
  errors: number;
  /** Bytes moved per run, for throughput rows. */
  bytes?: number;
  /** Filled in once the baselines are known, e.g. "2.9× raw HTTP, 1.4× relay". */
  comparison?: string;
}

interface Target {
  name: string;
  pass: boolean;
  detail: string;
}

/** One workspace node's way from a fresh preauth key to the first request that worked, in ms. */
interface JoinSample {
  node: string;
  /** headscale API: preauth key created. */
  keyMs: number;
  /** tailscaled started, `tailscale up` done, address known. */
  upMs: number;
  /** The control-plane node's netmap holds the peer with a DERP home or an endpoint. */
  peerMs: number;
  /** SOCKS5 connect + HTTP/2 handshake + read_file, retried until it works. */
  requestMs: number;
  totalMs: number;
  /** Request attempts, the one that worked included. */
  attempts: number;
}

function parseFlags(argv: string[]): Flags {
  const known = new Set(["--quick", "--strict", "--create-only", "--help"]);
  const unknown = argv.filter((argument) => !known.has(argument));
  if (argv.includes("--help") || unknown.length > 0) {
    if (unknown.length > 0) process.stderr.write(`unknown argument: ${unknown.join(" ")}\n`);
    process.stderr.write("usage: npx tsx bench/tailnet.ts [--quick] [--strict] [--create-only]\n");
    process.exit(unknown.length > 0 ? 2 : 0);
  }
  return { quick: argv.includes("--quick"), strict: argv.includes("--strict"), createOnly: argv.includes("--create-only") };
}

/** The first port of the daemons' tailnet range that is free on loopback, as a daemon picks its own. */
async function freeDaemonPort(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((done) => {
      const server = net.createServer();
      server.once("error", () => done(false));
      server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
    });
  for (let port = DAEMON_TAILNET_PORTS.first; port <= DAEMON_TAILNET_PORTS.last; port += 1) if (await free(port)) return port;
  throw new Error(`no free port in ${DAEMON_TAILNET_PORTS.first}-${DAEMON_TAILNET_PORTS.last}`);
}


/** The control plane's relay endpoint, accepting one token. */
async function startRelay(resources: Resources, token: string): Promise<{ url: string; relay: RelayServer }> {
  const relay = new RelayServer({ authenticate: async (given) => (given === token ? { agentId: AGENT_ID } : null) });
  const server = http.createServer((_request, response) => response.writeHead(404).end());
  server.on("upgrade", (request, socket, head) => {
    if (!relay.handleUpgrade(request, socket, head)) socket.destroy();
  });
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  resources.defer("relay", async () => {
    await relay.close();
    server.closeAllConnections();
    await new Promise((closed) => server.close(closed));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/agent/relay`, relay };
}

/** The workspace daemon (bench/tailnet/daemon.ts) in a child process, serving the relay and its tailnet port. */
async function startDaemon(resources: Resources, start: Omit<DaemonStart, "type">): Promise<void> {
  const child = resources.child("workspace daemon", fork(daemonScript, [], { execArgv: tsxExecArgv(), stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  const ready = new Promise<void>((done, fail) => {
    child.once("message", (message: DaemonMessage) => (message.type === "ready" ? done() : fail(new Error(`workspace daemon failed to start: ${message.message}`))));
    child.once("exit", (code, signal) => fail(new Error(`workspace daemon exited early (code ${code}, signal ${signal})`)));
  });
  child.send({ type: "start", ...start } satisfies DaemonStart);
  await ready;
}

/** What the control plane does per tool call: dial (a live connection is reused) and send. */
const over = (transport: Transport, agentId: string, operation: (connection: AgentConnection) => Promise<void>) => async () => operation(await transport.dial(agentId));

const since = (start: number) => performance.now() - start;

function printTable(header: string[], cells: string[][], leftColumns: Set<number>): void {
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => (line[column] as string).length)));
  const format = (line: string[]) =>
    `| ${line.map((cell, column) => (leftColumns.has(column) ? cell.padEnd(widths[column] as number) : cell.padStart(widths[column] as number))).join(" | ")} |`;
  console.log(format(header));
  console.log(`|${widths.map((width, column) => (leftColumns.has(column) ? `:${"-".repeat(width + 1)}` : `${"-".repeat(width + 1)}:`)).join("|")}|`);
  for (const line of cells) console.log(format(line));
}

function printRows(rows: Row[]): void {
  printTable(
    ["scenario", "n", "errors", "p50 ms", "p99 ms", "MB/s (p50)", "compared"],
    rows.map((row) => [
      row.label,
      String(row.summary.n),
      String(row.errors),
      milliseconds(row.summary.p50),
      milliseconds(row.summary.p99),
      row.bytes === undefined ? "" : megabytesPerSecond(row.bytes, row.summary.p50).toFixed(0),
      row.comparison ?? "",
    ]),
    new Set([0, 6]),
  );
}

function printJoins(joins: JoinSample[]): void {
  const seconds = (value: number) => (value / 1000).toFixed(2);
  printTable(
    ["join → reachable", "key s", "tailscale up s", "in netmap s", "first request s", "total s", "attempts"],
    joins.map((join) => [join.node, seconds(join.keyMs), seconds(join.upMs), seconds(join.peerMs), seconds(join.requestMs), seconds(join.totalMs), String(join.attempts)]),
    new Set([0]),
  );
}

function printCreates(run: CreateRun): void {
  const seconds = (value: number) => (value / 1000).toFixed(2);
  printTable(
    [`create → reachable (${run.database})`, "POST s", "spawned s", "daemon up s", "relay s", "joined s", "endpoint s", "ready s", "reachable s", "last ping s", "path", "pings"],
    run.samples.map((sample) => [
      sample.workspace,
      seconds(sample.createdMs),
      seconds(sample.spawnedMs),
      seconds(sample.daemonMs),
      seconds(sample.relayMs),
      seconds(sample.joinedMs),
      seconds(sample.endpointMs),
      seconds(sample.readyMs),
      seconds(sample.reachableMs),
      seconds(sample.lastPingMs),
      sample.path,
      String(sample.pings),
    ]),
    new Set([0, 10]),
  );
}

/** The create → reachable target, p50/min/max of each step. */
function createFigures(run: CreateRun) {
  const of = (pick: (sample: CreateSample) => number) => summarize(run.samples.map(pick));
  const reachable = of((sample) => sample.reachableMs);
  const seconds = (value: number) => `${(value / 1000).toFixed(2)} s`;
  const target: Target = {
    name: `create → reachable over the tailnet p50 ≤ ${REACHABLE_BUDGET_MS / 1000} s (kiln server --tailnet, relay fallback off)`,
    pass: reachable.p50 <= REACHABLE_BUDGET_MS,
    detail: `p50 ${seconds(reachable.p50)}, min ${seconds(reachable.min)}, max ${seconds(reachable.max)} of ${reachable.n}; POST → daemon spawned p50 ${seconds(of((sample) => sample.spawnedMs).p50)}, → daemon up ${seconds(of((sample) => sample.daemonMs).p50)}, → relay ${seconds(of((sample) => sample.relayMs).p50)}, → endpoint ${seconds(of((sample) => sample.endpointMs).p50)}`,
  };
  const round = (value: number) => Math.round(value);
  const json = (summary: Summary) => ({ p50: round(summary.p50), min: round(summary.min), max: round(summary.max) });
  return {
    target,
    json: {
      database: run.database,
      n: reachable.n,
      reachable_ms: json(reachable),
      spawned_ms: json(of((sample) => sample.spawnedMs)),
      daemon_ms: json(of((sample) => sample.daemonMs)),
      relay_ms: json(of((sample) => sample.relayMs)),
      joined_ms: json(of((sample) => sample.joinedMs)),
      endpoint_ms: json(of((sample) => sample.endpointMs)),
      ready_ms: json(of((sample) => sample.readyMs)),
      samples: run.samples.map((sample) => ({
        workspace: sample.workspace,
        created_ms: round(sample.createdMs),
        spawned_ms: round(sample.spawnedMs),
        daemon_ms: round(sample.daemonMs),
        relay_ms: round(sample.relayMs),
        joined_ms: round(sample.joinedMs),
        endpoint_ms: round(sample.endpointMs),
        ready_ms: round(sample.readyMs),
        reachable_ms: round(sample.reachableMs),
        last_ping_ms: round(sample.lastPingMs),
        path: sample.path,
        pings: sample.pings,
      })),
    },
  };
}

async function main(resources: Resources, flags: Flags): Promise<boolean> {
  const started = performance.now();
  const plan = flags.quick ? PLANS.quick : PLANS.full;
  const host = machine();
  const loadAtStart = os.loadavg()[0] as number;
  console.log(`tailnet benchmark${flags.quick ? " (--quick)" : ""}: node ${host.node}, ${host.os}, ${host.cpus} CPUs (${host.cpu_model}), ${host.memory_gib} GiB`);
  console.log(`load average (1 min) ${loadAtStart.toFixed(2)}: other processes on the machine skew everything below`);
  const missing = ["tailscaled", "tailscale", "headscale"].filter((name) => !existsSync(join(bin, name)));
  if (missing.length > 0) throw new Error(`missing ${missing.join(", ")} in ${bin}: run node tailnet/scripts/toolchain.mjs`);

  // First, with the machine to itself: this phase's server and daemons are gone before the rest starts.
  const creates = await measureCreateToReachable(resources, plan.creates, (line) => process.stderr.write(`${line}\n`));
  const created = createFigures(creates);
  if (flags.createOnly) {
    console.log();
    printCreates(creates);
    console.log();
    console.log(`${created.target.pass ? "PASS" : "FAIL"}  ${created.target.name}: ${created.target.detail}`);
    const loadAtEnd = os.loadavg()[0] as number;
    const wallSeconds = since(started) / 1000;
    console.log(`\n${wallSeconds.toFixed(1)} s wall; load average (1 min) ${loadAtStart.toFixed(2)} → ${loadAtEnd.toFixed(2)}\n`);
    const load = { start: Math.round(loadAtStart * 1000) / 1000, end: Math.round(loadAtEnd * 1000) / 1000 };
    console.log(JSON.stringify({ benchmark: "tailnet", phase: "create", quick: flags.quick, machine: host, load_average_1m: load, create_to_reachable: created.json, pass: created.target.pass, wall_s: Math.round(wallSeconds * 10) / 10 }));
    return created.target.pass;
  }

  const root = resources.temporaryDirectory("kiln-bench-tailnet-");
  const workdir = join(root, "workspace");
  writeWorkspace(workdir);
  const token = randomBytes(24).toString("hex");
  const credential = createCredential();

  const ports = await startLoopbackPeer(resources, join(workdir, STREAM_FILE));
  const { url: relayUrl, relay } = await startRelay(resources, token);

  // Kiln's own policy: the control plane reaches the daemons' port range, nothing else.
  const tailnetPort = await freeDaemonPort();
  const headscale = await Headscale.start({ binary: join(bin, "headscale"), dataDir: join(root, "headscale"), policy: defaultPolicy() });
  resources.defer("headscale", () => headscale.stop());
  const controlKey = await headscale.createPreauthKey({ tags: [CONTROL_PLANE_TAG], ephemeral: true });
  const controlPlane = await TailscaleNode.start({ binaries, stateDir: join(root, "control-plane"), loginServer: headscale.url, authKey: controlKey.key, hostname: "kiln-control-plane", socks5: true, env: DERP_OVER_HTTP });
  resources.defer("control-plane tailscaled", () => controlPlane.stop());
  if (!controlPlane.socks5) throw new Error("control-plane node has no SOCKS5 proxy");
  const transport = new TailnetTransport({ socks5: controlPlane.socks5 });
  resources.defer("tailnet transport", () => transport.close());

  await startDaemon(resources, { relayUrl, token, credential, tailnetPort, workdir });
  await checkReadFile(await relay.dial(AGENT_ID, { timeoutMs: 30_000 }), "the relay");

  /** A fresh workspace node: preauth key → tailscaled joined → in the control plane's netmap → a read_file that works. */
  const joinWorkspace = async (name: string, env: NodeJS.ProcessEnv): Promise<{ node: TailscaleNode; sample: JoinSample }> => {
    const keyStart = performance.now();
    const key = await headscale.createPreauthKey({ tags: [WORKSPACE_TAG], ephemeral: true });
    const upStart = performance.now();
    const node = await TailscaleNode.start({ binaries, stateDir: join(root, name), loginServer: headscale.url, authKey: key.key, hostname: name, env });
    resources.defer(`${name} tailscaled`, () => node.stop());
    const peerStart = performance.now();
    await controlPlane.waitForPeer(node.ipv4, 30_000);
    const requestStart = performance.now();
    transport.register(name, { address: node.ipv4, port: tailnetPort, credential });
    let attempts = 0;
    for (;;) {
      attempts += 1;
      try {
        await readFile(await transport.dial(name, { timeoutMs: 5000 }));
        break;
      } catch (error) {
        if (since(keyStart) > 30_000) throw new Error(`${name} not reachable after ${attempts} attempts`, { cause: error });
        await new Promise((wait) => setTimeout(wait, 50));
      }
    }
    const end = performance.now();
    const sample = { node: name, keyMs: upStart - keyStart, upMs: peerStart - upStart, peerMs: requestStart - peerStart, requestMs: end - requestStart, totalMs: end - keyStart, attempts };
    process.stderr.write(`  ${name}: join → reachable ${(sample.totalMs / 1000).toFixed(2)} s (${attempts} attempts)\n`);
    return { node, sample };
  };

  const joins: JoinSample[] = [];
  // One after the other, so each join has the machine to itself.
  const direct = await joinWorkspace(DIRECT_NODE, DERP_OVER_HTTP);
  joins.push(direct.sample);
  const derp = await joinWorkspace(DERP_NODE, FORCED_DERP);
  joins.push(derp.sample);
  await checkReadFile(await transport.dial(DIRECT_NODE), "the tailnet (direct)");
  await checkReadFile(await transport.dial(DERP_NODE), "the tailnet (DERP)");

  /** The path WireGuard packets take, seen from both ends (`tailscale ping`). */
  const checkPaths = async () => ({
    direct: await controlPlane.ping(direct.node.ipv4),
    directReverse: await direct.node.ping(controlPlane.ipv4),
    derp: await controlPlane.ping(derp.node.ipv4),
    derpReverse: await derp.node.ping(controlPlane.ipv4),
  });
  const describePaths = (paths: Record<string, PeerPath>) => Object.entries(paths).map(([name, path]) => `${name} ${path.path} via ${path.endpoint} ${path.roundTripMs} ms`).join("; ");
  const pathsBefore = await checkPaths();
  console.log(`paths before: ${describePaths(pathsBefore)}`);
  console.log(`daemon reachable over relay and tailnet; measuring (workdir ${workdir})\n`);

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
  const ping = (via: Transport, agentId: string) => over(via, agentId, async (connection) => void (await connection.ping()));

  const [rawHttp, relayPing, directPing, derpPing, relayRead, directRead, derpRead] = (await measure(plan.latency, [
    { key: "raw_http", label: "raw HTTP/1.1 keep-alive GET (child process)", operation: rawHttpGet(ports.httpPort) },
    { key: "relay_ping", label: "relay HTTP/2 PING (diagnostic)", operation: ping(relay, AGENT_ID) },
    { key: "direct_ping", label: "tailnet direct HTTP/2 PING (diagnostic)", operation: ping(transport, DIRECT_NODE) },
    { key: "derp_ping", label: "tailnet DERP HTTP/2 PING (diagnostic)", operation: ping(transport, DERP_NODE) },
    { key: "relay_read_file", label: "relay read_file 4 KiB", operation: over(relay, AGENT_ID, readFile) },
    { key: "direct_read_file", label: "tailnet direct read_file 4 KiB", operation: over(transport, DIRECT_NODE, readFile) },
    { key: "derp_read_file", label: "tailnet DERP read_file 4 KiB", operation: over(transport, DERP_NODE, readFile) },
  ])) as [Row, Row, Row, Row, Row, Row, Row];
  const [relayExecute, directExecute, derpExecute] = (await measure(plan.process, [
    { key: "relay_execute_true", label: "relay execute true", operation: over(relay, AGENT_ID, executeTrue) },
    { key: "direct_execute_true", label: "tailnet direct execute true", operation: over(transport, DIRECT_NODE, executeTrue) },
    { key: "derp_execute_true", label: "tailnet DERP execute true", operation: over(transport, DERP_NODE, executeTrue) },
  ])) as [Row, Row, Row];
  const [rawTcp, relayStream, directStream, derpStream] = (await measure(plan.stream, [
    { key: "raw_tcp_64mib", label: "raw TCP 64 MiB (child process)", operation: () => readRawTcp(ports.tcpPort, STREAM_FILE_BYTES), bytes: STREAM_FILE_BYTES },
    { key: "relay_raw_64mib", label: "relay GET /v1/files/raw 64 MiB", operation: over(relay, AGENT_ID, readStream), bytes: STREAM_FILE_BYTES },
    { key: "direct_raw_64mib", label: "tailnet direct GET /v1/files/raw 64 MiB", operation: over(transport, DIRECT_NODE, readStream), bytes: STREAM_FILE_BYTES },
    { key: "derp_raw_64mib", label: "tailnet DERP GET /v1/files/raw 64 MiB", operation: over(transport, DERP_NODE, readStream), bytes: STREAM_FILE_BYTES },
  ])) as [Row, Row, Row, Row];

  const pathsAfter = await checkPaths();
  console.log(`paths after: ${describePaths(pathsAfter)}`);

  // More fresh nodes for join → reachable, each gone again before the next.
  for (let index = 1; index <= plan.extraJoins; index += 1) {
    const name = `ws-join-${index}`;
    const joined = await joinWorkspace(name, DERP_OVER_HTTP);
    joins.push(joined.sample);
    transport.unregister(name);
    await joined.node.stop();
    await headscale.deleteNodesByAddress(joined.node.ipv4);
  }

  const ratio = (row: Row, baseline: Row) => row.summary.p50 / baseline.summary.p50;
  for (const row of [relayPing, directPing, derpPing, relayRead]) row.comparison = `${ratio(row, rawHttp).toFixed(1)}× raw HTTP`;
  for (const row of [directRead, derpRead]) row.comparison = `${ratio(row, rawHttp).toFixed(1)}× raw HTTP, ${ratio(row, relayRead).toFixed(2)}× relay`;
  for (const row of [directPing, derpPing]) row.comparison += `, ${ratio(row, relayPing).toFixed(2)}× relay`;
  for (const row of [directExecute, derpExecute]) row.comparison = `${ratio(row, relayExecute).toFixed(2)}× relay`;
  for (const row of [relayStream, directStream, derpStream]) row.comparison = `${((rawTcp.summary.p50 / row.summary.p50) * 100).toFixed(0)} % of raw TCP`;
  const rows = [rawHttp, relayPing, directPing, derpPing, relayRead, directRead, derpRead, relayExecute, directExecute, derpExecute, rawTcp, relayStream, directStream, derpStream];

  const joinSummary = summarize(joins.map((join) => join.totalMs));
  const failedRequests = rows.reduce((total, row) => total + row.errors, 0);
  const pathChecks = [pathsBefore, pathsAfter];
  const targets: Target[] = [
    { name: "tailnet direct read_file p50 ≤ 5 ms", pass: directRead.summary.p50 <= 5, detail: `${milliseconds(directRead.summary.p50)} ms` },
    {
      name: "tailnet direct read_file p50 ≤ 3 × relay read_file p50",
      pass: directRead.summary.p50 <= 3 * relayRead.summary.p50,
      detail: `${milliseconds(directRead.summary.p50)} ms, limit ${milliseconds(3 * relayRead.summary.p50)} ms (${ratio(directRead, relayRead).toFixed(2)}×)`,
    },
    {
      name: `join → reachable p50 ≤ ${REACHABLE_BUDGET_MS / 1000} s (the issue's whole create → reachable budget)`,
      pass: joinSummary.p50 <= REACHABLE_BUDGET_MS,
      detail: `p50 ${(joinSummary.p50 / 1000).toFixed(2)} s, max ${(joinSummary.max / 1000).toFixed(2)} s of ${joins.length} joins`,
    },
    {
      name: "direct path is direct, both ends, before and after",
      pass: pathChecks.every((paths) => paths.direct.path === "direct" && paths.directReverse.path === "direct"),
      detail: pathChecks.map((paths) => `${paths.direct.path}/${paths.directReverse.path}`).join(", "),
    },
    {
      name: "forced-DERP path is DERP, both ends, before and after",
      pass: pathChecks.every((paths) => paths.derp.path === "derp" && paths.derpReverse.path === "derp"),
      detail: pathChecks.map((paths) => `${paths.derp.path}/${paths.derpReverse.path}`).join(", "),
    },
    { name: "no failed requests", pass: failedRequests === 0, detail: `${failedRequests} failed` },
    created.target,
  ];

  console.log();
  printRows(rows);
  console.log();
  printJoins(joins);
  console.log();
  printCreates(creates);
  console.log();
  for (const target of targets) console.log(`${target.pass ? "PASS" : "FAIL"}  ${target.name}: ${target.detail}`);
  const allPass = targets.every((target) => target.pass);
  const wallSeconds = since(started) / 1000;
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
  const jsonPaths = (paths: Record<string, PeerPath>) => Object.fromEntries(Object.entries(paths).map(([name, path]) => [name, { path: path.path, endpoint: path.endpoint, rtt_ms: path.roundTripMs }]));
  console.log(
    JSON.stringify({
      benchmark: "tailnet",
      quick: flags.quick,
      machine: host,
      load_average_1m: { start: round(loadAtStart), end: round(loadAtEnd) },
      results,
      ratios: {
        direct_read_file_vs_relay_p50: round(ratio(directRead, relayRead)),
        derp_read_file_vs_relay_p50: round(ratio(derpRead, relayRead)),
        direct_read_file_vs_raw_http_p50: round(ratio(directRead, rawHttp)),
      },
      joins: joins.map((join) => ({
        node: join.node,
        key_ms: round(join.keyMs),
        up_ms: round(join.upMs),
        peer_ms: round(join.peerMs),
        request_ms: round(join.requestMs),
        total_ms: round(join.totalMs),
        attempts: join.attempts,
      })),
      join_to_reachable_ms: { n: joinSummary.n, p50: round(joinSummary.p50), max: round(joinSummary.max) },
      create_to_reachable: created.json,
      paths: { before: jsonPaths(pathsBefore), after: jsonPaths(pathsAfter) },
      targets: targets.map((target) => ({ name: target.name, pass: target.pass, detail: target.detail })),
      pass: allPass,
      wall_s: round(wallSeconds),
    }),
  );
  return allPass;
}

const flags = parseFlags(process.argv.slice(2));
await runBenchmark("tailnet", flags.strict, (resources) => main(resources, flags));
