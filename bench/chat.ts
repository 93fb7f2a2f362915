/**
 * Agent chat loop benchmark: how many chats one control-plane process carries, what each
 * agent step costs besides the model, and how fast an enqueued chat is claimed.
 *
 *   npx tsx bench/chat.ts [--quick] [--strict] [--profile] [--sequential=N]
 *
 * One run, in order:
 * 1. A throwaway Postgres cluster and an in-process `kiln server` (startServer), a fake
 *    Anthropic API and the HTTP client creating chats in a child process (bench/chat/peer.ts),
 *    so this process's RSS and CPU are the control plane's alone.
 * 2. Sequential chats (one at a time): per-step overhead without queueing.
 * 3. 1000 chats at once (a tenth with a list_templates tool call), created over HTTP while
 *    the worker is stopped, then run with every first model call held open until all 1000
 *    are in flight: peak RSS, wall time, throughput, per-step overhead under load, CPU per step.
 * 4. Wake-up latency (Store.create → claimed) on Postgres, then on PGlite, with NOTIFY and,
 *    for comparison, without it (polling only).
 *
 * Per-step overhead = (chat claimable → chat waiting) − (time the fake spent serving the
 * chat's model calls), divided by the chat's model calls; docs/benchmarks.md explains it. Prints a table, PASS/FAIL per
 * target, and one JSON line last. Exit status is 0 unless something broke, or with
 * --strict, a target failed. --profile writes CPU profiles of the sequential and load
 * phases to a directory it names (kept after the run). --sequential=N runs N text chats (and N/2.5
 * tool chats) in the sequential phase instead of the plan's, for a steadier p50 on a busy machine.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import * as Store from "../control-plane/src/chats/store.ts";
import { parseServerConfig } from "../control-plane/src/config.ts";
import { chatMessages, chats } from "../control-plane/src/db/schema.ts";
import { createLogger } from "../control-plane/src/logger.ts";
import { startServer, type RunningServer } from "../control-plane/src/server/server.ts";
import { findPostgresBin, startPostgresCluster } from "../control-plane/src/testing/postgres-cluster.ts";
import { postgresCpuMs } from "./chat/postgres-cpu.ts";
import { promptFor, type ChatScript, type CreatedChat, type ModelCall, type PeerCommand, type PeerReply } from "./chat/protocol.ts";
import { profiled } from "./chat/profile.ts";
import { StatementCounter } from "./chat/statements.ts";
import { ChatTracker } from "./chat/tracker.ts";
import { summarize, type Summary } from "./lib/measure.ts";
import { Resources } from "./lib/resources.ts";

const here = dirname(fileURLToPath(import.meta.url));
const peerScript = resolve(here, "chat/peer.ts");

/** Artificial latency of every model call: a short reply streamed in a few chunks. */
const MODEL_LATENCY_MS = 200;
/** The worker's poll interval when NOTIFY does not wake it (ChatWorker's default; startServer keeps it). */
const POLL_MS = 1_000;
const RSS_SAMPLE_MS = 50;
const MiB = 2 ** 20;

interface Plan {
  /** Chats run concurrently in the load phase. */
  load: number;
  /** Every n-th chat makes one list_templates call first. */
  toolEvery: number;
  /** POSTs the client keeps in flight while creating the load. */
  inFlight: number;
  /** Warm-up chats (JIT, connection pools) before anything is measured. */
  warmup: number;
  sequentialText: number;
  sequentialTool: number;
  wake: { warmup: number; measured: number };
  /** Samples without NOTIFY; each costs about one poll interval. */
  pollOnly: number;
}

const PLANS: Record<"full" | "quick", Plan> = {
  full: { load: 1000, toolEvery: 10, inFlight: 100, warmup: 100, sequentialText: 20, sequentialTool: 10, wake: { warmup: 20, measured: 200 }, pollOnly: 6 },
  quick: { load: 200, toolEvery: 10, inFlight: 50, warmup: 40, sequentialText: 10, sequentialTool: 4, wake: { warmup: 10, measured: 50 }, pollOnly: 2 },
};

interface Flags {
  quick: boolean;
  strict: boolean;
  profile: boolean;
  /** Text chats in the sequential phase instead of the plan's. */
  sequential: number | null;
}

interface Target {
  name: string;
  actual: number;
  limit: number;
  unit: string;
  kind: "max" | "min";
}

interface Row {
  key: string;
  label: string;
  summary: Summary;
}

function parseFlags(argv: string[]): Flags {
  const known = new Set(["--quick", "--strict", "--profile", "--help"]);
  const sequentialArgument = argv.find((argument) => /^--sequential=[1-9][0-9]*$/.test(argument));
  const unknown = argv.filter((argument) => !known.has(argument) && argument !== sequentialArgument);
  if (argv.includes("--help") || unknown.length > 0) {
    if (unknown.length > 0) process.stderr.write(`unknown argument: ${unknown.join(" ")}\n`);
    process.stderr.write("usage: npx tsx bench/chat.ts [--quick] [--strict] [--profile] [--sequential=N]\n");
    process.exit(unknown.length > 0 ? 2 : 0);
  }
  return {
    quick: argv.includes("--quick"), strict: argv.includes("--strict"), profile: argv.includes("--profile"),
    sequential: sequentialArgument ? Number(sequentialArgument.slice("--sequential=".length)) : null,
  };
}

function machine() {
  const cpus = os.cpus();
  return {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.availableParallelism(),
    cpu_model: cpus[0]?.model.trim() ?? "unknown",
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
  };
}

/** Linux pressure stall information: the share of the last minute in which something runnable waited for a CPU. */
function cpuPressure(): number | null {
  try {
    const match = /^some avg10=[\d.]+ avg60=([\d.]+)/m.exec(readFileSync("/proc/pressure/cpu", "utf8"));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function contention(): string {
  const pressure = cpuPressure();
  return `load average (1 min) ${(os.loadavg()[0] as number).toFixed(2)}${pressure === null ? "" : `, CPU pressure (some, 60 s) ${pressure.toFixed(0)} %`}`;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** The child process: fake model API plus the chat-creating client. */
class Peer {
  readonly baseUrl: string;
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess, baseUrl: string) {
    this.#child = child;
    this.baseUrl = baseUrl;
  }

  static async start(resources: Resources): Promise<Peer> {
    // The peer is TypeScript too; load tsx explicitly so this works however the bench itself was started.
    const child = resources.child(
      "fake model peer",
      fork(peerScript, [], { execArgv: ["--import", import.meta.resolve("tsx")], stdio: ["ignore", "inherit", "inherit", "ipc"] }),
    );
    const ready = await Peer.next(child, "ready");
    return new Peer(child, ready.baseUrl);
  }

  private static next<T extends PeerReply["type"]>(child: ChildProcess, type: T): Promise<Extract<PeerReply, { type: T }>> {
    return new Promise((resolveReply, reject) => {
      const onMessage = (reply: PeerReply) => {
        if (reply.type !== type) return;
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolveReply(reply as Extract<PeerReply, { type: T }>);
      };
      const onExit = (code: number | null, signal: string | null) => reject(new Error(`fake model peer exited (code ${code}, signal ${signal})`));
      child.on("message", onMessage);
      child.once("exit", onExit);
    });
  }

  ask<T extends PeerReply["type"]>(command: PeerCommand, replyType: T): Promise<Extract<PeerReply, { type: T }>> {
    const reply = Peer.next(this.#child, replyType);
    this.#child.send(command);
    return reply;
  }
}

interface Deployment {
  server: RunningServer;
  tracker: ChatTracker;
  token: string;
  userId: string;
  /** Statements sent to Postgres (null on PGlite). */
  statements: StatementCounter | null;
  close(): Promise<void>;
}

/** startServer as `kiln server` runs it, plus an owner and a default model on the fake, made through the API. */
async function deploy(resources: Resources, peer: Peer, options: { postgresUrl?: string; chatConcurrency: number }): Promise<Deployment> {
  const dataDir = resources.temporaryDirectory("kiln-bench-chat-");
  // An empty environment: KILN_* variables of the shell must not change what is measured.
  const config = parseServerConfig({ dataDir, listen: "127.0.0.1:0", postgresUrl: options.postgresUrl, logLevel: "silent", chatConcurrency: options.chatConcurrency }, {});
  const server = await startServer(config, createLogger({ level: "silent" }));
  const tracker = new ChatTracker(server.chats.bus);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    tracker.close();
    await server.close();
  };
  resources.defer(`kiln server (${server.database.kind})`, close);
  const call = async (path: string, body: unknown, token?: string) => {
    const response = await fetch(`${server.accessUrl}/api/v1${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`POST ${path}: HTTP ${response.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const owner = await call("/users/first", { email: "bench@example.com", username: "bench", password: "bench-password-123" });
  const token = owner.token as string;
  const provider = await call("/admin/providers", { name: "fake", type: "anthropic", base_url: peer.baseUrl, api_key: "fake-anthropic-key" }, token);
  await call("/admin/models", { provider_id: provider.id, model: "fake-model", is_default: true, context_window: 200_000 }, token);
  const statements = server.database.kind === "postgres" ? StatementCounter.install((server.database.db as unknown as { $client?: unknown }).$client) : null;
  return { server, tracker, token, userId: (owner.user as { id: string }).id, statements, close };
}

interface ChatResult {
  key: string;
  steps: number;
  /** Chat claimable (committed, and the worker running) → chat waiting. */
  totalMs: number;
  /** Time the fake spent serving this chat's model calls. */
  modelMs: number;
  /** Chat claimable → claimed by the worker. */
  claimMs: number;
  /** Claimed → the first model request reached the fake: loading the chat, building the request, connecting. */
  beforeModelMs: number;
  /** The last model response ended → chat waiting: reading the stream's end, storing the reply, closing the turn. */
  afterModelMs: number;
  /** (total − model) / steps: everything the control plane added, per model call. */
  overheadPerStepMs: number;
  /** (claimed → waiting − model) / steps: the same without the wait for a claim. */
  turnOverheadPerStepMs: number;
}

/**
 * Joins what the tracker saw with what the fake served. A chat counts from when it could be
 * claimed: its commit, or `workerStartedAt` for chats created while the worker was stopped.
 * Chats that failed or lost their timings come back as errors.
 */
function analyze(created: CreatedChat[], tracker: ChatTracker, calls: Record<string, ModelCall[]>, workerStartedAt = 0): { results: ChatResult[]; errors: string[] } {
  // The tracker's clock is this process's performance.now(); the fake's is the shared epoch clock.
  const toEpoch = (time: number) => performance.timeOrigin + time;
  const results: ChatResult[] = [];
  const errors: string[] = [];
  for (const chat of created) {
    const times = tracker.times.get(chat.id);
    const modelCalls = calls[chat.key] ?? [];
    if (times?.error) {
      errors.push(`${chat.key}: ${times.error.message}`);
      continue;
    }
    const first = modelCalls[0];
    const last = modelCalls.at(-1);
    if (times?.pending === undefined || times.running === undefined || times.waiting === undefined || !first || !last) {
      errors.push(`${chat.key}: incomplete timings ${JSON.stringify({ ...times, modelCalls })}`);
      continue;
    }
    const claimable = Math.max(times.pending, workerStartedAt);
    const modelMs = modelCalls.reduce((total, call) => total + (call.endMs - call.startMs), 0);
    const steps = modelCalls.length;
    const totalMs = times.waiting - claimable;
    results.push({
      key: chat.key,
      steps,
      totalMs,
      modelMs,
      // A claim can report a hair before the creating request's COMMIT continuation runs.
      claimMs: Math.max(0, times.running - claimable),
      beforeModelMs: first.startMs - toEpoch(times.running),
      afterModelMs: toEpoch(times.waiting) - last.endMs,
      overheadPerStepMs: (totalMs - modelMs) / steps,
      turnOverheadPerStepMs: (times.waiting - times.running - modelMs) / steps,
    });
  }
  return { results, errors };
}

async function createChats(peer: Peer, deployment: Deployment, scripts: ChatScript[], inFlight: number): Promise<Extract<PeerReply, { type: "created" }>> {
  const reply = await peer.ask({ type: "create", url: deployment.server.accessUrl, token: deployment.token, chats: scripts, inFlight }, "created");
  if (reply.failures.length > 0) throw new Error(`${reply.failures.length} chats could not be created; first: ${reply.failures[0]}`);
  return reply;
}

async function settleAll(deployment: Deployment, created: CreatedChat[], timeoutMs: number): Promise<void> {
  await Promise.all(created.map((chat) => deployment.tracker.settled(chat.id, timeoutMs)));
}

function scripts(prefix: string, count: number, options: { latencyMs: number; toolEvery: number; hold?: boolean }): ChatScript[] {
  return Array.from({ length: count }, (_, index) => ({
    key: `${prefix}-${index}`,
    latencyMs: options.latencyMs,
    tool: options.toolEvery > 0 && index % options.toolEvery === options.toolEvery - 1,
    hold: options.hold ?? false,
  }));
}

interface CpuMs {
  controlPlane: number;
  peer: number;
  postgres: number | null;
  /** SQL statements the control plane sent (null on PGlite). */
  statements: number | null;
}

/** CPU time spent from now until the returned function is called, per process group. */
async function cpuMeter(peer: Peer, postgresPort: number, statements: StatementCounter | null): Promise<() => Promise<CpuMs>> {
  // Collecting also drops the model-call timings of earlier phases.
  const peerBefore = (await peer.ask({ type: "collect" }, "collected")).cpuMs;
  const postgresBefore = postgresCpuMs(postgresPort);
  const before = process.cpuUsage();
  const statementsBefore = statements?.count ?? 0;
  return async () => {
    const sent = statements ? statements.count - statementsBefore : null;
    const used = process.cpuUsage(before);
    const postgresAfter = postgresCpuMs(postgresPort);
    // Peeks at the peer's CPU without dropping its timings: they are collected once more right after.
    const peerAfter = (await peer.ask({ type: "cpu" }, "cpu")).cpuMs;
    return {
      controlPlane: (used.user + used.system) / 1000,
      peer: peerAfter - peerBefore,
      postgres: postgresBefore !== null && postgresAfter !== null ? postgresAfter - postgresBefore : null,
      statements: sent,
    };
  };
}

interface LoadReport {
  chats: number;
  steps: number;
  errors: string[];
  create: { wallMs: number; postMs: number[]; cpu: CpuMs };
  /** From the worker's start to the last chat waiting. */
  turns: {
    wallMs: number;
    /** Worker start → every chat's first model call open at the fake (null if that never happened). */
    allInFlightMs: number | null;
    /** Release of the held model calls → the last chat waiting. */
    drainMs: number;
    /** RSS when every chat had its model call open. */
    inFlightRssBytes: number | null;
    cpu: CpuMs;
    peakActive: number;
    /** Queries waiting for one of the pool's connections, sampled with the RSS; null off Postgres. */
    poolWaiting: { peak: number; mean: number } | null;
    eventLoopDelayMs: { p50: number; p99: number; max: number };
  };
  results: ChatResult[];
  rss: { baselineBytes: number; peakBytes: number; maxRssBytes: number; samples: number };
}

/**
 * 1000 chats at once. They are created over HTTP while the worker is stopped (ChatWorker.stop,
 * its public API), then the worker starts and finds them all pending, as after a burst or a
 * restart with a backlog. The fake holds every first model call open after its first frame
 * until all 1000 are open, so they really are in flight together (as with real models, which
 * take seconds), then releases them: the rest streams in the usual 200 ms. Without the hold,
 * turns end faster than this 2-core process claims new ones and only about 230 overlap.
 */
async function runLoad(peer: Peer, deployment: Deployment, plan: Plan, postgresPort: number): Promise<LoadReport> {
  const { server, tracker } = deployment;
  const worker = server.chats.worker;
  const baselineBytes = process.memoryUsage().rss;
  let peakBytes = baselineBytes;
  let samples = 0;
  let peakActive = 0;
  const pool = postgresPool(deployment);
  const waiting = { peak: 0, total: 0, samples: 0, counting: false };
  const sampler = setInterval(() => {
    peakBytes = Math.max(peakBytes, process.memoryUsage().rss);
    peakActive = Math.max(peakActive, worker.activeCount);
    samples++;
    if (pool && waiting.counting) {
      waiting.peak = Math.max(waiting.peak, pool.waitingCount);
      waiting.total += pool.waitingCount;
      waiting.samples++;
    }
  }, RSS_SAMPLE_MS);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  try {
    await worker.stop();
    const createCpu = await cpuMeter(peer, postgresPort, deployment.statements);
    const created = await createChats(peer, deployment, scripts("load", plan.load, { latencyMs: MODEL_LATENCY_MS, toolEvery: plan.toolEvery, hold: true }), plan.inFlight);
    const create = { wallMs: created.wallMs, postMs: created.chats.map((chat) => chat.postMs), cpu: await createCpu() };

    const turnCpu = await cpuMeter(peer, postgresPort, deployment.statements);
    loopDelay.enable();
    const workerStartedAt = performance.now();
    waiting.counting = true;
    await worker.start();
    const inFlight = await allHeld(peer, plan.load, 90_000);
    const allInFlightMs = inFlight ? performance.now() - workerStartedAt : null;
    const inFlightRssBytes = inFlight ? process.memoryUsage().rss : null;
    peakBytes = Math.max(peakBytes, inFlightRssBytes ?? 0);
    const releasedAt = performance.now();
    await peer.ask({ type: "release" }, "released");
    await settleAll(deployment, created.chats, 150_000);
    waiting.counting = false;
    loopDelay.disable();
    const finished = Math.max(...created.chats.map((chat) => tracker.times.get(chat.id)?.waiting ?? tracker.times.get(chat.id)?.error?.at ?? 0));
    const cpu = await turnCpu();
    peakBytes = Math.max(peakBytes, process.memoryUsage().rss);
    const calls = (await peer.ask({ type: "collect" }, "collected")).calls;
    const { results, errors } = analyze(created.chats, tracker, calls, workerStartedAt);
    return {
      chats: created.chats.length,
      steps: Object.values(calls).reduce((total, list) => total + list.length, 0),
      errors,
      create,
      turns: {
        wallMs: finished - workerStartedAt,
        allInFlightMs,
        drainMs: finished - releasedAt,
        inFlightRssBytes,
        cpu,
        peakActive,
        poolWaiting: pool ? { peak: waiting.peak, mean: waiting.total / Math.max(1, waiting.samples) } : null,
        eventLoopDelayMs: { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
      },
      results,
      rss: { baselineBytes, peakBytes, maxRssBytes: process.resourceUsage().maxRSS * 1024, samples },
    };
  } finally {
    clearInterval(sampler);
    loopDelay.disable();
    // Idempotent; the worker must run again for the phases after this one, also after a failure here.
    await worker.start();
  }
}

/** The node-postgres pool behind a Postgres deployment (drizzle exposes it as `$client`), for its queue length; null on PGlite. */
function postgresPool(deployment: Deployment): { waitingCount: number } | null {
  if (deployment.server.database.kind !== "postgres") return null;
  const client = (deployment.server.database.db as unknown as { $client?: { waitingCount?: unknown } }).$client;
  return typeof client?.waitingCount === "number" ? (client as { waitingCount: number }) : null;
}

/** Waits until `count` model calls are held open at the fake; false if that takes longer than `timeoutMs`. */
async function allHeld(peer: Peer, count: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ((await peer.ask({ type: "held" }, "held")).count >= count) return true;
    await sleep(50);
  }
  return false;
}

interface SequentialReport {
  text: ChatResult[];
  tool: ChatResult[];
  errors: string[];
  steps: number;
  /** Over the whole phase, the API's 30 POSTs included. */
  cpu: CpuMs;
}

/** One chat at a time, so nothing queues: the per-step cost alone. */
async function runSequential(peer: Peer, deployment: Deployment, plan: Plan, postgresPort: number): Promise<SequentialReport> {
  const all = [
    ...scripts("sequential-text", plan.sequentialText, { latencyMs: MODEL_LATENCY_MS, toolEvery: 0 }),
    ...scripts("sequential-tool", plan.sequentialTool, { latencyMs: MODEL_LATENCY_MS, toolEvery: 1 }),
  ];
  const meter = await cpuMeter(peer, postgresPort, deployment.statements);
  const created: CreatedChat[] = [];
  for (const script of all) {
    const reply = await createChats(peer, deployment, [script], 1);
    await settleAll(deployment, reply.chats, 30_000);
    created.push(...reply.chats);
    // Let the worker's post-turn claim finish, as between two users' messages.
    await sleep(20);
  }
  const cpu = await meter();
  const calls = (await peer.ask({ type: "collect" }, "collected")).calls;
  const { results, errors } = analyze(created, deployment.tracker, calls);
  return {
    text: results.filter((result) => result.key.startsWith("sequential-text")),
    tool: results.filter((result) => result.key.startsWith("sequential-tool")),
    errors,
    steps: Object.values(calls).reduce((total, list) => total + list.length, 0),
    cpu,
  };
}

interface WakeReport {
  /** `SELECT 1` through drizzle and the connection pool: what one of the worker's round trips costs at least. */
  roundTrip: number[];
  /** Chat committed (Store.create published `pending`, then NOTIFY) → claimed. */
  notify: number[];
  /** Store.create called → claimed: the insert transaction included. */
  fromCall: number[];
  /** Chat committed without NOTIFY → claimed by the worker's poll. */
  pollOnly: number[];
}

/** A SELECT 1 reference, then enqueue → claim, one chat at a time, with the fake answering at once. */
async function measureWake(deployment: Deployment, plan: Plan): Promise<WakeReport> {
  const { server, tracker, userId } = deployment;
  const kind = server.database.kind;
  const report: WakeReport = { roundTrip: [], notify: [], fromCall: [], pollOnly: [] };
  for (let index = 0; index < plan.wake.warmup + plan.wake.measured; index++) {
    const before = performance.now();
    await server.database.db.execute("SELECT 1");
    if (index >= plan.wake.warmup) report.roundTrip.push(performance.now() - before);
  }
  for (let index = 0; index < plan.wake.warmup + plan.wake.measured; index++) {
    const called = performance.now();
    const chat = await Store.create(server.database, server.chats.bus, { ownerId: userId, prompt: promptFor({ key: `wake-${kind}-${index}`, latencyMs: 0, tool: false }) });
    const times = await tracker.settled(chat.id, 10_000);
    if (times.error || times.pending === undefined || times.running === undefined) throw new Error(`wake-up chat failed: ${JSON.stringify(times)}`);
    if (index >= plan.wake.warmup) {
      report.notify.push(times.running - times.pending);
      report.fromCall.push(times.running - called);
    }
    // The worker claims once more after every turn; start the next sample with it idle.
    await sleep(20);
  }
  // Without NOTIFY the worker finds the chat on its next poll. Starting the samples at evenly spread
  // offsets into the poll interval makes their mean an estimate of the expected wait.
  for (let index = 0; index < plan.pollOnly; index++) {
    await sleep(((index + 0.5) / plan.pollOnly) * POLL_MS);
    const chatId = await server.database.db.transaction(async (transaction) => {
      const [chat] = await transaction.insert(chats).values({ ownerId: userId, title: "poll only", status: "pending" }).returning({ id: chats.id });
      const prompt = promptFor({ key: `poll-${kind}-${index}`, latencyMs: 0, tool: false });
      await transaction.insert(chatMessages).values({ chatId: chat!.id, role: "user", parts: Store.textParts(prompt), createdBy: userId });
      return chat!.id;
    });
    const committed = performance.now();
    const times = await tracker.settled(chatId, POLL_MS * 3 + 10_000);
    if (times.error || times.running === undefined) throw new Error(`poll-only chat failed: ${JSON.stringify(times)}`);
    report.pollOnly.push(times.running - committed);
  }
  return report;
}

const milliseconds = (value: number) => (Math.abs(value) < 10 ? value.toFixed(2) : value.toFixed(1));
const mebibytes = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

function printTable(rows: Row[]): void {
  const header = ["measurement", "n", "p50 ms", "p99 ms", "mean ms", "max ms"];
  const cells = rows.map((row) => [row.label, String(row.summary.n), milliseconds(row.summary.p50), milliseconds(row.summary.p99), milliseconds(row.summary.mean), milliseconds(row.summary.max)]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => (line[column] as string).length)));
  const format = (line: string[]) => `| ${line.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] as number) : cell.padStart(widths[column] as number))).join(" | ")} |`;
  console.log(format(header));
  console.log(`|${widths.map((width, column) => (column === 0 ? `:${"-".repeat(width + 1)}` : `${"-".repeat(width + 1)}:`)).join("|")}|`);
  for (const line of cells) console.log(format(line));
}

function passes(target: Target): boolean {
  return target.kind === "max" ? target.actual <= target.limit : target.actual >= target.limit;
}

async function main(resources: Resources, flags: Flags): Promise<boolean> {
  const started = performance.now();
  const base = flags.quick ? PLANS.quick : PLANS.full;
  const plan = flags.sequential ? { ...base, sequentialText: flags.sequential, sequentialTool: Math.max(1, Math.round(flags.sequential / 2.5)) } : base;
  const host = machine();
  const loadAtStart = os.loadavg()[0] as number;
  const pressureAtStart = cpuPressure();
  console.log(`chat loop benchmark${flags.quick ? " (--quick)" : ""}: node ${host.node}, ${host.os}, ${host.cpus} CPUs (${host.cpu_model}), ${host.memory_gib} GiB`);
  console.log(`${contention()}: other processes on the machine skew everything below`);

  const profiles = flags.profile ? mkdtempSync(join(os.tmpdir(), "kiln-bench-chat-profiles-")) : null;
  if (profiles) log(`CPU profiles of the sequential and load phases go to ${profiles} (the profiler inflates their timings)`);
  const bin = findPostgresBin();
  if (!bin) throw new Error("no PostgreSQL binaries (initdb, pg_ctl) found; install postgresql or set KILN_PG_BIN");
  const cluster = await startPostgresCluster(bin);
  resources.defer("postgres cluster", () => cluster.stop());
  const postgresPort = Number(new URL(cluster.url).port);
  const peer = await Peer.start(resources);
  const postgres = await deploy(resources, peer, { postgresUrl: cluster.url, chatConcurrency: Math.max(1000, plan.load) });
  log(`postgres ${cluster.url}, server ${postgres.server.accessUrl}, fake model ${peer.baseUrl}; model calls take ${MODEL_LATENCY_MS} ms`);
  const rssAtStart = process.memoryUsage().rss;

  log(`warm-up: ${plan.warmup} chats`);
  const warmup = await createChats(peer, postgres, scripts("warmup", plan.warmup, { latencyMs: 20, toolEvery: 5 }), plan.inFlight);
  await settleAll(postgres, warmup.chats, 60_000);

  log(`sequential: ${plan.sequentialText} text chats, ${plan.sequentialTool} with a tool call`);
  const sequential = await profiled(profiles, "sequential", () => runSequential(peer, postgres, plan, postgresPort));

  log(`load: ${plan.load} chats created with the worker stopped, then run at once`);
  const load = await profiled(profiles, "load", () => runLoad(peer, postgres, plan, postgresPort));
  log(`  created in ${(load.create.wallMs / 1000).toFixed(1)} s, run in ${(load.turns.wallMs / 1000).toFixed(1)} s, ${load.turns.peakActive} at once, peak RSS ${mebibytes(load.rss.peakBytes)}, ${load.errors.length} errors${load.errors[0] ? `; first: ${load.errors[0]}` : ""}`);

  log(`wake-up on postgres: ${plan.wake.measured} chats, then ${plan.pollOnly} without NOTIFY`);
  const wakePostgres = await measureWake(postgres, plan);
  await postgres.close();

  log("wake-up on pglite");
  const pglite = await deploy(resources, peer, { chatConcurrency: 10 });
  const wakePglite = await measureWake(pglite, plan);
  await pglite.close();

  const sequentialAll = [...sequential.text, ...sequential.tool];
  const loadText = load.results.filter((result) => result.steps === 1);
  const loadTool = load.results.filter((result) => result.steps > 1);
  const row = (key: string, label: string, values: number[]): Row => ({ key, label, summary: summarize(values) });
  const rows: Row[] = [
    row("sequential_chat_total", "sequential: committed → waiting, text chats", sequential.text.map((result) => result.totalMs)),
    row("sequential_model", "sequential: one model call, as the fake served it", sequentialAll.map((result) => result.modelMs / result.steps)),
    row("sequential_claim", "sequential: committed → claimed", sequentialAll.map((result) => result.claimMs)),
    row("sequential_overhead_step_text", "sequential: overhead per step, text chats", sequential.text.map((result) => result.overheadPerStepMs)),
    row("sequential_overhead_step_tool", "sequential: overhead per step, tool chats", sequential.tool.map((result) => result.overheadPerStepMs)),
    row("sequential_before_model", "sequential: claimed → model request sent (text)", sequential.text.map((result) => result.beforeModelMs)),
    row("sequential_after_model", "sequential: model response ended → waiting (text)", sequential.text.map((result) => result.afterModelMs)),
    row("load_post", `load: POST /chats, worker stopped (${plan.inFlight} in flight)`, load.create.postMs),
    row("load_chat_total", `load: worker start → waiting (${load.chats} chats)`, load.results.map((result) => result.totalMs)),
    row("load_claim", "load: worker start → claimed", load.results.map((result) => result.claimMs)),
    row("load_overhead_step", "load: overhead per step, all chats", load.results.map((result) => result.overheadPerStepMs)),
    row("load_overhead_step_text", "load: overhead per step, text chats", loadText.map((result) => result.overheadPerStepMs)),
    ...(loadTool.length > 0 ? [row("load_overhead_step_tool", "load: overhead per step, tool chats", loadTool.map((result) => result.overheadPerStepMs))] : []),
    row("load_turn_overhead_step", "load: overhead per step after the claim", load.results.map((result) => result.turnOverheadPerStepMs)),
    row("round_trip_postgres", "reference: postgres SELECT 1 through the pool", wakePostgres.roundTrip),
    row("round_trip_pglite", "reference: pglite SELECT 1", wakePglite.roundTrip),
    row("wake_postgres", "wake-up postgres: committed → claimed (NOTIFY)", wakePostgres.notify),
    row("wake_postgres_call", "wake-up postgres: Store.create called → claimed", wakePostgres.fromCall),
    row("wake_postgres_poll", "wake-up postgres: committed → claimed, no NOTIFY", wakePostgres.pollOnly),
    row("wake_pglite", "wake-up pglite: committed → claimed (NOTIFY)", wakePglite.notify),
    row("wake_pglite_call", "wake-up pglite: Store.create called → claimed", wakePglite.fromCall),
    row("wake_pglite_poll", "wake-up pglite: committed → claimed, no NOTIFY", wakePglite.pollOnly),
  ];

  const turnSeconds = load.turns.wallMs / 1000;
  const perCall = (cpu: CpuMs, calls: number) => ({
    controlPlane: cpu.controlPlane / calls,
    postgres: cpu.postgres === null ? null : cpu.postgres / calls,
    peer: cpu.peer / calls,
    statements: cpu.statements === null ? null : cpu.statements / calls,
  });
  const sequentialCpu = perCall(sequential.cpu, sequential.steps);
  const loadCpu = perCall(load.turns.cpu, load.steps);
  const createCpu = perCall(load.create.cpu, load.chats);
  const cpuLine = (cpu: { controlPlane: number; postgres: number | null; peer: number; statements: number | null }) =>
    `control plane ${milliseconds(cpu.controlPlane)} ms, postgres ${cpu.postgres === null ? "n/a" : `${milliseconds(cpu.postgres)} ms`}, fake model + client ${milliseconds(cpu.peer)} ms; SQL statements ${cpu.statements === null ? "n/a" : cpu.statements.toFixed(1)}`;
  console.log();
  printTable(rows);
  console.log();
  console.log(`sequential: ${sequentialAll.length} chats, ${sequential.steps} model calls; CPU per model call (the API's POSTs included): ${cpuLine(sequentialCpu)}`);
  console.log(`load: ${load.chats} chats (${loadTool.length} with a tool call), ${load.steps} model calls, ${load.errors.length} errors`);
  console.log(`  create: ${(load.create.wallMs / 1000).toFixed(2)} s over HTTP, ${(load.chats / (load.create.wallMs / 1000)).toFixed(0)} chats/s; CPU per chat: ${cpuLine(createCpu)}`);
  const drainSeconds = load.turns.drainMs / 1000;
  const allInFlight = load.turns.allInFlightMs === null ? `never all in flight (timed out with ${load.turns.peakActive})` : `all ${load.chats} in their model call ${(load.turns.allInFlightMs / 1000).toFixed(2)} s after the worker started`;
  console.log(`  run: ${allInFlight}; up to ${load.turns.peakActive} turns at once${load.turns.poolWaiting ? `; queries waiting for a pool connection: mean ${load.turns.poolWaiting.mean.toFixed(0)}, peak ${load.turns.poolWaiting.peak}` : ""}`);
  console.log(`  released, the last chat was waiting ${drainSeconds.toFixed(2)} s later: ${(load.chats / drainSeconds).toFixed(0)} chats/s, ${(load.steps / drainSeconds).toFixed(0)} model calls/s; worker start → last chat waiting ${turnSeconds.toFixed(2)} s`);
  console.log(`  CPU per model call: ${cpuLine(loadCpu)}; ${host.cpus} CPUs × ${turnSeconds.toFixed(1)} s = ${(host.cpus * turnSeconds).toFixed(1)} CPU-s available, ${((load.turns.cpu.controlPlane + (load.turns.cpu.postgres ?? 0) + load.turns.cpu.peer) / 1000).toFixed(1)} used`);
  console.log(`  RSS ${mebibytes(rssAtStart)} after start, ${mebibytes(load.rss.baselineBytes)} before the load, ${load.turns.inFlightRssBytes === null ? "" : `${mebibytes(load.turns.inFlightRssBytes)} with all in flight, `}peak ${mebibytes(load.rss.peakBytes)} (${load.rss.samples} samples every ${RSS_SAMPLE_MS} ms; kernel max RSS ${mebibytes(load.rss.maxRssBytes)})`);
  console.log(`  event loop delay while running: p50 ${milliseconds(load.turns.eventLoopDelayMs.p50)} ms, p99 ${milliseconds(load.turns.eventLoopDelayMs.p99)} ms, max ${milliseconds(load.turns.eventLoopDelayMs.max)} ms`);
  console.log(`wake-up: polling alone would average poll interval / 2 = ${POLL_MS / 2} ms; measured without NOTIFY: postgres mean ${milliseconds(summarize(wakePostgres.pollOnly).mean)} ms, pglite mean ${milliseconds(summarize(wakePglite.pollOnly).mean)} ms`);
  console.log();

  const summaryOf = (key: string) => (rows.find((candidate) => candidate.key === key) as Row).summary;
  const targets: Target[] = [
    { name: `${plan.load} concurrent chats: peak RSS ≤ 512 MiB`, actual: load.rss.peakBytes / MiB, limit: 512, unit: "MiB", kind: "max" },
    { name: `all ${plan.load} chats in flight at once`, actual: load.turns.peakActive, limit: plan.load, unit: "turns", kind: "min" },
    { name: "every chat reaches waiting, no errors", actual: load.errors.length + sequential.errors.length, limit: 0, unit: "errors", kind: "max" },
    { name: "overhead per step p50 ≤ 5 ms, sequential (text chats)", actual: summaryOf("sequential_overhead_step_text").p50, limit: 5, unit: "ms", kind: "max" },
    { name: `overhead per step p50 ≤ 5 ms, ${plan.load} at once (queueing included)`, actual: summaryOf("load_overhead_step").p50, limit: 5, unit: "ms", kind: "max" },
    { name: "wake-up p50 ≤ 5 ms, postgres (NOTIFY)", actual: summaryOf("wake_postgres").p50, limit: 5, unit: "ms", kind: "max" },
  ];
  for (const target of targets) {
    const format = (value: number) => (target.unit === "ms" ? `${milliseconds(value)} ms` : `${value.toFixed(0)} ${target.unit}`);
    console.log(`${passes(target) ? "PASS" : "FAIL"}  ${target.name}: ${format(target.actual)} (limit ${format(target.limit)})`);
  }
  if (sequential.errors.length > 0) console.log(`sequential errors (first 3): ${sequential.errors.slice(0, 3).join("; ")}`);
  if (load.errors.length > 0) console.log(`load errors (first 3): ${load.errors.slice(0, 3).join("; ")}`);
  const allPass = targets.every(passes);
  const benchSeconds = (performance.now() - started) / 1000;
  const loadAtEnd = os.loadavg()[0] as number;
  const pressureAtEnd = cpuPressure();
  console.log(`\n${allPass ? "all targets met" : "some targets missed"}; ${benchSeconds.toFixed(1)} s wall; at the end ${contention()}\n`);

  const round = (value: number) => Math.round(value * 1000) / 1000;
  const roundCpu = (cpu: { controlPlane: number; postgres: number | null; peer: number; statements: number | null }) => ({
    control_plane: round(cpu.controlPlane), postgres: cpu.postgres === null ? null : round(cpu.postgres), peer: round(cpu.peer),
    statements: cpu.statements === null ? null : round(cpu.statements),
  });
  console.log(
    JSON.stringify({
      benchmark: "chat",
      quick: flags.quick,
      machine: host,
      load_average_1m: { start: round(loadAtStart), end: round(loadAtEnd) },
      cpu_pressure_some_60s_percent: { start: pressureAtStart, end: pressureAtEnd },
      model_latency_ms: MODEL_LATENCY_MS,
      poll_ms: POLL_MS,
      results: Object.fromEntries(rows.map((entry) => [entry.key, { n: entry.summary.n, p50_ms: round(entry.summary.p50), p99_ms: round(entry.summary.p99), mean_ms: round(entry.summary.mean), max_ms: round(entry.summary.max) }])),
      sequential: { chats: sequentialAll.length, model_calls: sequential.steps, cpu_ms_per_model_call: roundCpu(sequentialCpu) },
      load: {
        chats: load.chats,
        tool_chats: loadTool.length,
        model_calls: load.steps,
        errors: load.errors.length,
        create_s: round(load.create.wallMs / 1000),
        create_cpu_ms_per_chat: roundCpu(createCpu),
        run_s: round(turnSeconds),
        all_in_flight_s: load.turns.allInFlightMs === null ? null : round(load.turns.allInFlightMs / 1000),
        drain_s: round(drainSeconds),
        chats_per_s_after_release: round(load.chats / drainSeconds),
        model_calls_per_s_after_release: round(load.steps / drainSeconds),
        peak_active: load.turns.peakActive,
        pool_waiting: load.turns.poolWaiting ? { mean: round(load.turns.poolWaiting.mean), peak: load.turns.poolWaiting.peak } : null,
        cpu_ms_per_model_call: roundCpu(loadCpu),
        rss_mib: {
          after_start: round(rssAtStart / MiB),
          before_load: round(load.rss.baselineBytes / MiB),
          all_in_flight: load.turns.inFlightRssBytes === null ? null : round(load.turns.inFlightRssBytes / MiB),
          peak: round(load.rss.peakBytes / MiB),
          kernel_max: round(load.rss.maxRssBytes / MiB),
        },
        event_loop_delay_ms: { p50: round(load.turns.eventLoopDelayMs.p50), p99: round(load.turns.eventLoopDelayMs.p99), max: round(load.turns.eventLoopDelayMs.max) },
      },
      targets: targets.map((target) => ({ name: target.name, actual: round(target.actual), limit: target.limit, unit: target.unit, pass: passes(target) })),
      pass: allPass,
      wall_s: round(benchSeconds),
    }),
  );
  return allPass;
}

const flags = parseFlags(process.argv.slice(2));
const resources = new Resources();
try {
  const allPass = await main(resources, flags);
  if (flags.strict && !allPass) process.exitCode = 1;
} catch (error) {
  process.stderr.write(`chat benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await resources.release();
}
