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
 * 3. Steady: 1000 tool-loop chats in flight together (4 model calls per turn: three
 *    list_templates calls, then a text reply), created over HTTP at a steady pace while the
 *    worker runs; each model call takes 6–14 s (drawn per call), so steps arrive spread out
 *    as with real agents. Per-step overhead = the fake's end of response k−1 → its receipt of
 *    request k (and the last response's end → waiting), judged on the steps taken while
 *    ≥ 95 % of the chats were in flight; RSS, CPU per model call. The per-step target for
 *    "1000 concurrent" is judged here.
 * 4. Burst (a diagnostic): 1000 chats (a tenth with a list_templates tool call), created over
 *    HTTP while the worker is stopped, then run with every first model call held open until
 *    all 1000 are in flight and released in the same 200 ms: peak RSS, throughput, and what a
 *    thundering herd does to per-step overhead (seconds of CPU queueing on 2 cores).
 * 5. Wake-up latency (Store.create → claimed) on Postgres, then on PGlite, with NOTIFY and,
 *    for comparison, without it (polling only).
 *
 * Per-step overhead in the sequential and burst phases = (chat claimable → chat waiting) −
 * (time the fake spent serving the chat's model calls), divided by the chat's model calls;
 * docs/benchmarks.md explains it. Prints a table, PASS/FAIL per target, and one JSON line last. Exit status is 0 unless something broke, or with
 * --strict, a target failed. --profile writes CPU profiles of the sequential, steady and burst
 * phases to a directory it names (kept after the run). --sequential=N runs N text chats (and N/2.5
 * tool chats) in the sequential phase instead of the plan's, for a steadier p50 on a busy machine.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
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
import { ChatTracker, type StepMilestone } from "./chat/tracker.ts";
import { machine, summarize, type Summary } from "./lib/measure.ts";
import { Resources, runBenchmark } from "./lib/resources.ts";

const here = dirname(fileURLToPath(import.meta.url));
const peerScript = resolve(here, "chat/peer.ts");

/** Artificial latency of every model call: a short reply streamed in a few chunks. */
const MODEL_LATENCY_MS = 200;
/** The worker's poll interval when NOTIFY does not wake it (ChatWorker's default; startServer keeps it). */
const POLL_MS = 1_000;
const RSS_SAMPLE_MS = 50;
const MiB = 2 ** 20;
/** The steady phase judges per-step overhead on the steps taken while at least this share of its chats was in flight. */
const IN_FLIGHT_SHARE = 0.95;

interface SteadyPlan {
  /** Chats in flight together. */
  chats: number;
  /** Model calls per turn: `modelCalls − 1` list_templates calls, then a text reply. */
  modelCalls: number;
  /** Each model call's duration is drawn uniformly from this range (ms). */
  latencyMinMs: number;
  latencyMaxMs: number;
  /** Chats created per second over HTTP while the worker runs, with at most `createInFlight` POSTs open. */
  createRate: number;
  createInFlight: number;
}

interface Plan {
  steady: SteadyPlan;
  /** Chats run at once in the burst phase. */
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
  full: {
    steady: { chats: 1000, modelCalls: 4, latencyMinMs: 6_000, latencyMaxMs: 14_000, createRate: 80, createInFlight: 20 },
    load: 1000, toolEvery: 10, inFlight: 100, warmup: 100, sequentialText: 20, sequentialTool: 10, wake: { warmup: 20, measured: 200 }, pollOnly: 6 },
  quick: {
    steady: { chats: 200, modelCalls: 4, latencyMinMs: 3_000, latencyMaxMs: 7_000, createRate: 40, createInFlight: 10 },
    load: 200, toolEvery: 10, inFlight: 50, warmup: 40, sequentialText: 10, sequentialTool: 4, wake: { warmup: 10, measured: 50 }, pollOnly: 2 },
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
    if (times?.running === undefined || times.waiting === undefined || !first || !last) {
      errors.push(`${chat.key}: incomplete timings ${JSON.stringify({ ...times, modelCalls })}`);
      continue;
    }
    // Claimed before its creator read the insert's answer (no `pending`): the commit was just before the claim.
    const claimable = Math.max(times.pending ?? times.running, workerStartedAt);
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

async function createChats(peer: Peer, deployment: Deployment, scripts: ChatScript[], inFlight: number, ratePerSecond?: number): Promise<Extract<PeerReply, { type: "created" }>> {
  const reply = await peer.ask({ type: "create", url: deployment.server.accessUrl, token: deployment.token, chats: scripts, inFlight, ratePerSecond }, "created");
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
    toolCalls: options.toolEvery > 0 && index % options.toolEvery === options.toolEvery - 1 ? 1 : 0,
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

/**
 * CPU time spent from now until the returned function is called, per process group. Unless
 * `keepCalls`, it also drops the model-call timings the fake recorded so far (earlier phases').
 */
async function cpuMeter(peer: Peer, postgresPort: number, statements: StatementCounter | null, keepCalls = false): Promise<() => Promise<CpuMs>> {
  const peerBefore = keepCalls ? (await peer.ask({ type: "cpu" }, "cpu")).cpuMs : (await peer.ask({ type: "collect" }, "collected")).cpuMs;
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

/** One step of a steady-phase chat: the control plane's time between two model calls, or after the last one. */
interface SteadyStep {
  /** "mid": response k−1 ended → request k received (k ≥ 2); "final": the last response ended → chat waiting. */
  kind: "mid" | "final";
  ms: number;
  /** The phase's chats committed and not yet waiting when the step began (the response before it ended). */
  inFlight: number;
  /** A mid-turn step split at the worker's events (ms each, in order); absent if an event is missing. */
  split?: { reply: number; toolStart: number; tool: number; toolResult: number; nextRequest: number };
}

interface SteadyReport {
  chats: number;
  /** In flight at once for a step to count towards the target: IN_FLIGHT_SHARE of the chats. */
  threshold: number;
  modelCalls: number;
  errors: string[];
  create: { wallMs: number; postMs: number[] };
  /** First POST → last chat waiting. */
  wallMs: number;
  steps: SteadyStep[];
  /** Chat committed → its first model request at the fake: wake-up, claim, loading the chat, building the request. */
  firstStepMs: number[];
  /** Every model call as the fake served it (its drawn duration plus timer slop). */
  modelMs: number[];
  /** The phase's chats in flight at once, as the bench saw them (sampled, and exactly from the event timestamps). */
  peakInFlight: number;
  peakActive: number;
  /** The whole phase, the creating POSTs included. */
  cpu: CpuMs;
  /** While at least `threshold` chats were in flight (sampled every RSS_SAMPLE_MS); null if that never happened. */
  window: {
    /** From the phase's first POST. */
    startS: number;
    durationS: number;
    cpu: CpuMs;
    /** Model requests the fake received in the window. */
    modelCalls: number;
    peakRssBytes: number;
    poolWaiting: { peak: number; mean: number } | null;
    eventLoopDelayMs: { p50: number; p99: number; max: number };
    /** The control plane's garbage-collection pauses in the window (perf_hooks "gc" entries). */
    gc: { count: number; totalMs: number; maxMs: number };
  } | null;
  rss: {
    baselineBytes: number;
    peakBytes: number;
    /** V8 heap in use (live and not yet collected) at the RSS peak. */
    heapAtPeakBytes: number;
    /** Right after the phase, once a full GC ran: what the process still holds. Null if a GC could not be forced. */
    afterGc: { rssBytes: number; heapUsedBytes: number } | null;
    samples: number;
  };
}

/**
 * Forces a full garbage collection (between phases, never while measuring) and reads the memory
 * left: without it, RSS after a phase mixes what is retained with garbage V8 has not collected yet.
 */
function memoryAfterGc(): { rssBytes: number; heapUsedBytes: number } | null {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as (() => void) | undefined;
    if (typeof gc !== "function") return null;
    gc();
    const memory = process.memoryUsage();
    return { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed };
  } catch {
    return null;
  }
}

/** Index of the first element of the ascending `sorted` greater than `value`: how many are ≤ value. */
function countAtMost(sorted: number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] as number) <= value) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * 1000 tool-loop chats in flight at once, arriving and stepping as real agents do. Chats are
 * created over HTTP at a steady pace while the worker runs (as users would); each turn makes
 * `modelCalls` model calls (list_templates calls, then a text reply), and each call takes a
 * duration drawn uniformly from 6–14 s, streamed as the usual SSE frames spread over it. So the
 * chats stay in flight for the whole window and their steps de-synchronise instead of arriving
 * in a burst. A step's overhead is measured on the fake's clock alone (end of response k−1 →
 * request k received) or, for the last step, from the end of the last response to `waiting`
 * (ChatEventBus, shared epoch clock). Only steps begun while ≥ 95 % of the chats were in flight
 * are judged; CPU is metered over the same window.
 */
async function runSteady(peer: Peer, deployment: Deployment, plan: SteadyPlan, postgresPort: number): Promise<SteadyReport> {
  const { server, tracker } = deployment;
  const worker = server.chats.worker;
  const threshold = Math.ceil(plan.chats * IN_FLIGHT_SHARE);
  // Every chat of the earlier phases has settled, so the tracker's counters move with this phase's chats alone.
  const committedBefore = tracker.committed;
  const settledBefore = tracker.settledCount;
  const inFlightNow = () => tracker.committed - committedBefore - (tracker.settledCount - settledBefore);
  const baselineBytes = process.memoryUsage().rss;
  let peakBytes = baselineBytes;
  let heapAtPeakBytes = process.memoryUsage().heapUsed;
  let samples = 0;
  let peakActive = 0;
  let peakInFlight = 0;
  const pool = postgresPool(deployment);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const window = {
    start: null as number | null,
    end: null as number | null,
    meter: null as Promise<() => Promise<CpuMs>> | null,
    cpu: null as Promise<CpuMs> | null,
    peakRssBytes: 0,
    waiting: { peak: 0, total: 0, samples: 0 },
    gc: { count: 0, totalMs: 0, maxMs: 0 },
  };
  const gcObserver = new PerformanceObserver((list) => {
    if (window.start === null || window.end !== null) return;
    for (const entry of list.getEntries()) {
      window.gc.count++;
      window.gc.totalMs += entry.duration;
      window.gc.maxMs = Math.max(window.gc.maxMs, entry.duration);
    }
  });
  gcObserver.observe({ entryTypes: ["gc"] });
  const phaseMeter = await cpuMeter(peer, postgresPort, deployment.statements);
  tracker.traceSteps = true;
  const started = performance.now();
  const endWindow = () => {
    window.end = performance.now();
    loopDelay.disable();
    const meter = window.meter as Promise<() => Promise<CpuMs>>;
    window.cpu = meter.then((stop) => stop());
  };
  let lastProgress = started;
  const sampler = setInterval(() => {
    const memory = process.memoryUsage();
    const rss = memory.rss;
    if (rss > peakBytes) {
      peakBytes = rss;
      heapAtPeakBytes = memory.heapUsed;
    }
    peakActive = Math.max(peakActive, worker.activeCount);
    samples++;
    const inFlight = inFlightNow();
    peakInFlight = Math.max(peakInFlight, inFlight);
    if (window.start === null && inFlight >= threshold) {
      window.start = performance.now();
      window.meter = cpuMeter(peer, postgresPort, deployment.statements, true);
      loopDelay.enable();
    } else if (window.start !== null && window.end === null && inFlight < threshold) {
      endWindow();
    }
    if (window.start !== null && window.end === null) {
      window.peakRssBytes = Math.max(window.peakRssBytes, rss);
      if (pool) {
        window.waiting.peak = Math.max(window.waiting.peak, pool.waitingCount);
        window.waiting.total += pool.waitingCount;
        window.waiting.samples++;
      }
    }
    const now = performance.now();
    if (now - lastProgress >= 10_000) {
      lastProgress = now;
      log(`  ${((now - started) / 1000).toFixed(0)} s: ${tracker.committed - committedBefore} created, ${inFlight} in flight, ${tracker.settledCount - settledBefore} waiting; RSS ${mebibytes(rss)}`);
    }
  }, RSS_SAMPLE_MS);
  try {
    const all: ChatScript[] = Array.from({ length: plan.chats }, (_, index) => ({
      key: `steady-${index}`,
      latencyMs: plan.latencyMinMs,
      latencyMaxMs: plan.latencyMaxMs,
      toolCalls: plan.modelCalls - 1,
    }));
    const created = await createChats(peer, deployment, all, plan.createInFlight, plan.createRate);
    const turnMs = plan.modelCalls * plan.latencyMaxMs;
    await settleAll(deployment, created.chats, turnMs + 120_000);
    if (window.start !== null && window.end === null) endWindow();
    const windowCpu = window.cpu ? await window.cpu : null;
    const cpu = await phaseMeter();
    const finished = Math.max(...created.chats.map((chat) => tracker.times.get(chat.id)?.waiting ?? tracker.times.get(chat.id)?.error?.at ?? 0));
    const calls = (await peer.ask({ type: "collect" }, "collected")).calls;
    clearInterval(sampler);
    const afterGc = memoryAfterGc();

    // In flight at epoch time t: committed at or before t, and not waiting (nor failed) at or before t.
    const toEpoch = (time: number) => performance.timeOrigin + time;
    const commits: number[] = [];
    const ends: number[] = [];
    for (const chat of created.chats) {
      const times = tracker.times.get(chat.id);
      const committed = times?.pending ?? times?.running;
      if (committed !== undefined) commits.push(toEpoch(committed));
      const end = times?.waiting ?? times?.error?.at;
      if (end !== undefined) ends.push(toEpoch(end));
    }
    commits.sort((left, right) => left - right);
    ends.sort((left, right) => left - right);
    const inFlightAt = (epoch: number) => countAtMost(commits, epoch) - countAtMost(ends, epoch);
    peakInFlight = Math.max(peakInFlight, ...commits.map(inFlightAt));

    const steps: SteadyStep[] = [];
    const firstStepMs: number[] = [];
    const modelMs: number[] = [];
    const errors: string[] = [];
    for (const chat of created.chats) {
      const times = tracker.times.get(chat.id);
      const modelCalls = calls[chat.key] ?? [];
      if (times?.error) {
        errors.push(`${chat.key}: ${times.error.message}`);
        continue;
      }
      if (times?.running === undefined || times.waiting === undefined || modelCalls.length !== plan.modelCalls) {
        errors.push(`${chat.key}: incomplete timings (${modelCalls.length} of ${plan.modelCalls} model calls) ${JSON.stringify(times)}`);
        continue;
      }
      // Only chats whose commit was seen (a chat claimed before its creator read the insert's answer has no `pending`).
      if (times.pending !== undefined) firstStepMs.push((modelCalls[0] as ModelCall).startMs - toEpoch(times.pending));
      const milestones = tracker.milestones.get(chat.id) ?? [];
      const nth = (milestone: StepMilestone, index: number) => {
        const found = milestones.filter((entry) => entry.milestone === milestone)[index];
        return found === undefined ? undefined : toEpoch(found.at);
      };
      for (const [index, call] of modelCalls.entries()) {
        modelMs.push(call.endMs - call.startMs);
        const previous = modelCalls[index - 1];
        if (!previous) continue;
        // Step `index` follows model call index − 1, which asked for the (index − 1)-th tool call.
        const [reply, toolStarted, toolFinished, toolResult] = (["reply", "tool.started", "tool.finished", "tool.result"] as const).map((milestone) => nth(milestone, index - 1));
        const split =
          reply !== undefined && toolStarted !== undefined && toolFinished !== undefined && toolResult !== undefined
            ? { reply: reply - previous.endMs, toolStart: toolStarted - reply, tool: toolFinished - toolStarted, toolResult: toolResult - toolFinished, nextRequest: call.startMs - toolResult }
            : undefined;
        steps.push({ kind: "mid", ms: call.startMs - previous.endMs, inFlight: inFlightAt(previous.endMs), ...(split ? { split } : {}) });
      }
      const last = modelCalls.at(-1) as ModelCall;
      steps.push({ kind: "final", ms: toEpoch(times.waiting) - last.endMs, inFlight: inFlightAt(last.endMs) });
    }
    const windowStart = window.start;
    const windowEnd = window.end;
    return {
      chats: created.chats.length,
      threshold,
      modelCalls: Object.values(calls).reduce((total, list) => total + list.length, 0),
      errors,
      create: { wallMs: created.wallMs, postMs: created.chats.map((chat) => chat.postMs) },
      wallMs: finished - started,
      steps,
      firstStepMs,
      modelMs,
      peakInFlight,
      peakActive,
      cpu,
      window:
        windowStart === null || windowEnd === null || windowCpu === null
          ? null
          : {
              startS: (windowStart - started) / 1000,
              durationS: (windowEnd - windowStart) / 1000,
              cpu: windowCpu,
              modelCalls: Object.values(calls)
                .flat()
                .filter((call) => call.startMs >= toEpoch(windowStart) && call.startMs < toEpoch(windowEnd)).length,
              peakRssBytes: window.peakRssBytes,
              poolWaiting: pool ? { peak: window.waiting.peak, mean: window.waiting.total / Math.max(1, window.waiting.samples) } : null,
              eventLoopDelayMs: { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
              gc: window.gc,
            },
      rss: { baselineBytes, peakBytes, heapAtPeakBytes, afterGc, samples },
    };
  } finally {
    clearInterval(sampler);
    gcObserver.disconnect();
    loopDelay.disable();
    tracker.traceSteps = false;
    tracker.milestones.clear();
  }
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
 * Burst, a diagnostic: 1000 chats at once. They are created over HTTP while the worker is stopped (ChatWorker.stop,
 * its public API), then the worker starts and finds them all pending, as after a burst or a
 * restart with a backlog. The fake holds every first model call open after its first frame
 * until all 1000 are open, so they really are in flight together (as with real models, which
 * take seconds), then releases them: the rest streams in the usual 200 ms. Without the hold,
 * turns end faster than this 2-core process claims new ones and only about 230 overlap.
 * 1000 turns then end within the same 200 ms, so its per-step figure is CPU queueing (no
 * target; the steady phase judges "1000 concurrent"); its peak RSS is the worst case.
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
  /** Chats claimed before Store.create returned (not in `notify`). */
  claimedFirst: number;
}

/** A SELECT 1 reference, then enqueue → claim, one chat at a time, with the fake answering at once. */
async function measureWake(deployment: Deployment, plan: Plan): Promise<WakeReport> {
  const { server, tracker, userId } = deployment;
  const kind = server.database.kind;
  const report: WakeReport = { roundTrip: [], notify: [], fromCall: [], pollOnly: [], claimedFirst: 0 };
  for (let index = 0; index < plan.wake.warmup + plan.wake.measured; index++) {
    const before = performance.now();
    await server.database.db.execute("SELECT 1");
    if (index >= plan.wake.warmup) report.roundTrip.push(performance.now() - before);
  }
  for (let index = 0; index < plan.wake.warmup + plan.wake.measured; index++) {
    const called = performance.now();
    const chat = await Store.create(server.database, server.chats.bus, { ownerId: userId, prompt: promptFor({ key: `wake-${kind}-${index}`, latencyMs: 0, toolCalls: 0 }) });
    const times = await tracker.settled(chat.id, 10_000);
    if (times.error || times.running === undefined) throw new Error(`wake-up chat failed: ${JSON.stringify(times)}`);
    if (index >= plan.wake.warmup) {
      // Without `pending` the worker claimed it before Store.create returned: commit → claim is unseen, and under this.
      if (times.pending !== undefined) report.notify.push(times.running - times.pending);
      else report.claimedFirst++;
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
      const prompt = promptFor({ key: `poll-${kind}-${index}`, latencyMs: 0, toolCalls: 0 });
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
  if (profiles) log(`CPU profiles of the sequential, steady and burst phases go to ${profiles} (the profiler inflates their timings)`);
  const bin = findPostgresBin();
  if (!bin) throw new Error("no PostgreSQL binaries (initdb, pg_ctl) found; install postgresql or set KILN_PG_BIN");
  const cluster = await startPostgresCluster(bin);
  resources.defer("postgres cluster", () => cluster.stop());
  const postgresPort = Number(new URL(cluster.url).port);
  const peer = await Peer.start(resources);
  const postgres = await deploy(resources, peer, { postgresUrl: cluster.url, chatConcurrency: Math.max(1000, plan.load, plan.steady.chats) });
  log(`postgres ${cluster.url}, server ${postgres.server.accessUrl}, fake model ${peer.baseUrl}; model calls take ${MODEL_LATENCY_MS} ms`);
  const rssAtStart = process.memoryUsage().rss;

  log(`warm-up: ${plan.warmup} chats`);
  const warmup = await createChats(peer, postgres, scripts("warmup", plan.warmup, { latencyMs: 20, toolEvery: 5 }), plan.inFlight);
  await settleAll(postgres, warmup.chats, 60_000);

  log(`sequential: ${plan.sequentialText} text chats, ${plan.sequentialTool} with a tool call`);
  const sequential = await profiled(profiles, "sequential", () => runSequential(peer, postgres, plan, postgresPort));

  const steadyPlan = plan.steady;
  log(
    `steady: ${steadyPlan.chats} chats created over HTTP at ${steadyPlan.createRate}/s while the worker runs, ${steadyPlan.modelCalls} model calls per turn ` +
      `(${steadyPlan.modelCalls - 1} list_templates calls, then text), each ${steadyPlan.latencyMinMs / 1000}–${steadyPlan.latencyMaxMs / 1000} s`,
  );
  const steady = await profiled(profiles, "steady", () => runSteady(peer, postgres, steadyPlan, postgresPort));
  log(`  ran in ${(steady.wallMs / 1000).toFixed(1)} s, up to ${steady.peakInFlight} in flight, ${steady.window ? `≥ ${steady.threshold} for ${steady.window.durationS.toFixed(1)} s` : `never ${steady.threshold}`}, peak RSS ${mebibytes(steady.rss.peakBytes)}, ${steady.errors.length} errors${steady.errors[0] ? `; first: ${steady.errors[0]}` : ""}`);

  log(`burst: ${plan.load} chats created with the worker stopped, then run at once`);
  const load = await profiled(profiles, "burst", () => runLoad(peer, postgres, plan, postgresPort));
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
  const row = (key: string, label: string, values: number[]): Row => ({ key, label, summary: values.length > 0 ? summarize(values) : { n: 0, p50: NaN, p99: NaN, min: NaN, max: NaN, mean: NaN } });
  const judged = steady.steps.filter((step) => step.inFlight >= steady.threshold);
  const rows: Row[] = [
    row("sequential_chat_total", "sequential: committed → waiting, text chats", sequential.text.map((result) => result.totalMs)),
    row("sequential_model", "sequential: one model call, as the fake served it", sequentialAll.map((result) => result.modelMs / result.steps)),
    row("sequential_claim", "sequential: committed → claimed", sequentialAll.map((result) => result.claimMs)),
    row("sequential_overhead_step_text", "sequential: overhead per step, text chats", sequential.text.map((result) => result.overheadPerStepMs)),
    row("sequential_overhead_step_tool", "sequential: overhead per step, tool chats", sequential.tool.map((result) => result.overheadPerStepMs)),
    row("sequential_before_model", "sequential: claimed → model request sent (text)", sequential.text.map((result) => result.beforeModelMs)),
    row("sequential_after_model", "sequential: model response ended → waiting (text)", sequential.text.map((result) => result.afterModelMs)),
    row("steady_post", `steady: POST /chats, worker running (${steadyPlan.createRate}/s, ≤ ${steadyPlan.createInFlight} in flight)`, steady.create.postMs),
    row("steady_model", "steady: one model call, as the fake served it", steady.modelMs),
    row("steady_first_step", "steady: committed → first model request", steady.firstStepMs),
    row("steady_overhead_step", `steady: overhead per step, ≥ ${steady.threshold} in flight`, judged.map((step) => step.ms)),
    row("steady_overhead_step_mid", `steady: response ended → next request, ≥ ${steady.threshold} in flight`, judged.filter((step) => step.kind === "mid").map((step) => step.ms)),
    row("steady_overhead_step_final", `steady: last response ended → waiting, ≥ ${steady.threshold} in flight`, judged.filter((step) => step.kind === "final").map((step) => step.ms)),
    ...(
      [
        ["reply", "reply", "response ended → reply stored"],
        ["toolStart", "tool_start", "reply stored → tool started"],
        ["tool", "tool", "tool started → finished"],
        ["toolResult", "tool_result", "tool finished → result stored"],
        ["nextRequest", "next_request", "result stored → next request"],
      ] as const
    ).map(([part, key, label]) => row(`steady_mid_${key}`, `steady:   mid-turn, ${label}`, judged.flatMap((step) => (step.split ? [step.split[part]] : [])))),
    row("steady_overhead_step_all", "steady: overhead per step, every step (ramp, drain)", steady.steps.map((step) => step.ms)),
    row("steady_overhead_step_final_all", "steady: last response ended → waiting, every chat", steady.steps.filter((step) => step.kind === "final").map((step) => step.ms)),
    row("burst_post", `burst: POST /chats, worker stopped (${plan.inFlight} in flight)`, load.create.postMs),
    row("burst_chat_total", `burst: worker start → waiting (${load.chats} chats)`, load.results.map((result) => result.totalMs)),
    row("burst_claim", "burst: worker start → claimed", load.results.map((result) => result.claimMs)),
    row("burst_overhead_step", "burst: overhead per step, all chats", load.results.map((result) => result.overheadPerStepMs)),
    row("burst_overhead_step_text", "burst: overhead per step, text chats", loadText.map((result) => result.overheadPerStepMs)),
    ...(loadTool.length > 0 ? [row("burst_overhead_step_tool", "burst: overhead per step, tool chats", loadTool.map((result) => result.overheadPerStepMs))] : []),
    row("burst_turn_overhead_step", "burst: overhead per step after the claim", load.results.map((result) => result.turnOverheadPerStepMs)),
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
  const steadyCpu = steady.window ? perCall(steady.window.cpu, Math.max(1, steady.window.modelCalls)) : null;
  const steadyPhaseCpu = perCall(steady.cpu, Math.max(1, steady.modelCalls));
  console.log(
    `steady: ${steady.chats} chats, ${steady.modelCalls} model calls (per turn ${steadyPlan.modelCalls - 1} list_templates calls, then text; each call ${steadyPlan.latencyMinMs / 1000}–${steadyPlan.latencyMaxMs / 1000} s), ${steady.errors.length} errors`,
  );
  console.log(
    `  create: ${(steady.create.wallMs / 1000).toFixed(2)} s over HTTP, ${(steady.chats / (steady.create.wallMs / 1000)).toFixed(0)} chats/s (paced at ${steadyPlan.createRate}/s); first POST → last chat waiting ${(steady.wallMs / 1000).toFixed(1)} s`,
  );
  if (steady.window && steadyCpu) {
    const window = steady.window;
    const used = (window.cpu.controlPlane + (window.cpu.postgres ?? 0) + window.cpu.peer) / 1000;
    const share = (ms: number | null) => (ms === null ? "n/a" : `${((ms / 1000 / window.durationS) * 100).toFixed(0)} %`);
    console.log(
      `  in flight: up to ${steady.peakInFlight} at once (worker: ${steady.peakActive} turns); ≥ ${steady.threshold} for ${window.durationS.toFixed(1)} s, from ${window.startS.toFixed(1)} s after the first POST: ` +
        `${judged.length} steps judged (${judged.filter((step) => step.kind === "mid").length} mid-turn, ${judged.filter((step) => step.kind === "final").length} final), ${(window.modelCalls / window.durationS).toFixed(0)} model calls/s`,
    );
    console.log(
      `  CPU per model call while ≥ ${steady.threshold} in flight: ${cpuLine(steadyCpu)}; of one CPU: control plane ${share(window.cpu.controlPlane)}, postgres ${share(window.cpu.postgres)}, fake ${share(window.cpu.peer)}; ` +
        `${host.cpus} CPUs × ${window.durationS.toFixed(1)} s = ${(host.cpus * window.durationS).toFixed(1)} CPU-s available, ${used.toFixed(1)} used`,
    );
    console.log(
      `  in that window: peak RSS ${mebibytes(window.peakRssBytes)}${window.poolWaiting ? `, queries waiting for a pool connection mean ${window.poolWaiting.mean.toFixed(1)}, peak ${window.poolWaiting.peak}` : ""}; ` +
        `event loop delay p50 ${milliseconds(window.eventLoopDelayMs.p50)} ms, p99 ${milliseconds(window.eventLoopDelayMs.p99)} ms, max ${milliseconds(window.eventLoopDelayMs.max)} ms; ` +
        `GC pauses ${window.gc.count}, ${milliseconds(window.gc.totalMs)} ms in all, longest ${milliseconds(window.gc.maxMs)} ms`,
    );
  } else {
    console.log(`  in flight: up to ${steady.peakInFlight} at once, never ${steady.threshold}: no step is judged (creating the chats took longer than the first turns)`);
  }
  console.log(`  whole phase (the creating POSTs included): CPU per model call: ${cpuLine(steadyPhaseCpu)}`);
  console.log(
    `  RSS ${mebibytes(steady.rss.baselineBytes)} before, peak ${mebibytes(steady.rss.peakBytes)} (V8 heap in use then ${mebibytes(steady.rss.heapAtPeakBytes)}, garbage included)` +
      `${steady.rss.afterGc ? `; after the phase and a forced full GC ${mebibytes(steady.rss.afterGc.rssBytes)}, heap ${mebibytes(steady.rss.afterGc.heapUsedBytes)} (the event bus keeps each chat's events for 60 s after its turn)` : ""}`,
  );
  console.log(`burst (diagnostic): ${load.chats} chats (${loadTool.length} with a tool call), ${load.steps} model calls, ${load.errors.length} errors`);
  console.log(`  create: ${(load.create.wallMs / 1000).toFixed(2)} s over HTTP, ${(load.chats / (load.create.wallMs / 1000)).toFixed(0)} chats/s; CPU per chat: ${cpuLine(createCpu)}`);
  const drainSeconds = load.turns.drainMs / 1000;
  const allInFlight = load.turns.allInFlightMs === null ? `never all in flight (timed out with ${load.turns.peakActive})` : `all ${load.chats} in their model call ${(load.turns.allInFlightMs / 1000).toFixed(2)} s after the worker started`;
  console.log(`  run: ${allInFlight}; up to ${load.turns.peakActive} turns at once${load.turns.poolWaiting ? `; queries waiting for a pool connection: mean ${load.turns.poolWaiting.mean.toFixed(0)}, peak ${load.turns.poolWaiting.peak}` : ""}`);
  console.log(`  released, the last chat was waiting ${drainSeconds.toFixed(2)} s later: ${(load.chats / drainSeconds).toFixed(0)} chats/s, ${(load.steps / drainSeconds).toFixed(0)} model calls/s; worker start → last chat waiting ${turnSeconds.toFixed(2)} s`);
  console.log(`  CPU per model call: ${cpuLine(loadCpu)}; ${host.cpus} CPUs × ${turnSeconds.toFixed(1)} s = ${(host.cpus * turnSeconds).toFixed(1)} CPU-s available, ${((load.turns.cpu.controlPlane + (load.turns.cpu.postgres ?? 0) + load.turns.cpu.peer) / 1000).toFixed(1)} used`);
  console.log(`  RSS ${mebibytes(rssAtStart)} after start, ${mebibytes(load.rss.baselineBytes)} before the burst, ${load.turns.inFlightRssBytes === null ? "" : `${mebibytes(load.turns.inFlightRssBytes)} with all in flight, `}peak ${mebibytes(load.rss.peakBytes)} (${load.rss.samples} samples every ${RSS_SAMPLE_MS} ms; kernel max RSS ${mebibytes(load.rss.maxRssBytes)})`);
  console.log(`  event loop delay while running: p50 ${milliseconds(load.turns.eventLoopDelayMs.p50)} ms, p99 ${milliseconds(load.turns.eventLoopDelayMs.p99)} ms, max ${milliseconds(load.turns.eventLoopDelayMs.max)} ms`);
  console.log(`wake-up: polling alone would average poll interval / 2 = ${POLL_MS / 2} ms; measured without NOTIFY: postgres mean ${milliseconds(summarize(wakePostgres.pollOnly).mean)} ms, pglite mean ${milliseconds(summarize(wakePglite.pollOnly).mean)} ms; claimed before Store.create returned (left out of committed → claimed): postgres ${wakePostgres.claimedFirst}, pglite ${wakePglite.claimedFirst}`);
  console.log();

  const summaryOf = (key: string) => (rows.find((candidate) => candidate.key === key) as Row).summary;
  const targets: Target[] = [
    {
      name: `${Math.max(steady.chats, load.chats)} concurrent chats: peak RSS ≤ 512 MiB (steady ${mebibytes(steady.rss.peakBytes)}, burst ${mebibytes(load.rss.peakBytes)})`,
      actual: Math.max(steady.rss.peakBytes, load.rss.peakBytes) / MiB, limit: 512, unit: "MiB", kind: "max",
    },
    { name: `steady: ≥ ${steady.threshold} of ${steadyPlan.chats} chats in flight at once`, actual: steady.peakInFlight, limit: steady.threshold, unit: "chats", kind: "min" },
    { name: `burst: all ${plan.load} chats in flight at once`, actual: load.turns.peakActive, limit: plan.load, unit: "turns", kind: "min" },
    { name: "every chat reaches waiting, no errors", actual: steady.errors.length + load.errors.length + sequential.errors.length, limit: 0, unit: "errors", kind: "max" },
    { name: "overhead per step p50 ≤ 5 ms, sequential (text chats)", actual: summaryOf("sequential_overhead_step_text").p50, limit: 5, unit: "ms", kind: "max" },
    { name: `overhead per step p50 ≤ 5 ms, ${steadyPlan.chats} chats in flight (steady)`, actual: summaryOf("steady_overhead_step").p50, limit: 5, unit: "ms", kind: "max" },
    { name: "wake-up p50 ≤ 5 ms, postgres (NOTIFY)", actual: summaryOf("wake_postgres").p50, limit: 5, unit: "ms", kind: "max" },
  ];
  for (const target of targets) {
    const format = (value: number) => (target.unit === "ms" ? `${milliseconds(value)} ms` : `${value.toFixed(0)} ${target.unit}`);
    console.log(`${passes(target) ? "PASS" : "FAIL"}  ${target.name}: ${format(target.actual)} (limit ${format(target.limit)})`);
  }
  const burstStep = summaryOf("burst_overhead_step");
  console.log(
    `diagnostic, no target: burst: ${plan.load} released in the same 200 ms: overhead per step p50 ${milliseconds(burstStep.p50)} ms, p99 ${milliseconds(burstStep.p99)} ms (CPU queueing of a thundering herd)`,
  );
  if (flags.quick) console.log(`(--quick: ${steadyPlan.chats} steady chats with ${steadyPlan.latencyMinMs / 1000}–${steadyPlan.latencyMaxMs / 1000} s model calls and ${plan.load} in the burst, not 1000; the full run judges the targets)`);
  if (steady.errors.length > 0) console.log(`steady errors (first 3): ${steady.errors.slice(0, 3).join("; ")}`);
  if (sequential.errors.length > 0) console.log(`sequential errors (first 3): ${sequential.errors.slice(0, 3).join("; ")}`);
  if (load.errors.length > 0) console.log(`burst errors (first 3): ${load.errors.slice(0, 3).join("; ")}`);
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
      steady: {
        chats: steady.chats,
        model_calls_per_turn: steadyPlan.modelCalls,
        model_latency_ms: { min: steadyPlan.latencyMinMs, max: steadyPlan.latencyMaxMs },
        create_rate_per_s: steadyPlan.createRate,
        create_in_flight: steadyPlan.createInFlight,
        model_calls: steady.modelCalls,
        errors: steady.errors.length,
        create_s: round(steady.create.wallMs / 1000),
        run_s: round(steady.wallMs / 1000),
        in_flight_threshold: steady.threshold,
        peak_in_flight: steady.peakInFlight,
        peak_active: steady.peakActive,
        steps: steady.steps.length,
        steps_judged: judged.length,
        window: steady.window
          ? {
              start_s: round(steady.window.startS),
              duration_s: round(steady.window.durationS),
              model_calls: steady.window.modelCalls,
              model_calls_per_s: round(steady.window.modelCalls / steady.window.durationS),
              cpu_ms_per_model_call: steadyCpu ? roundCpu(steadyCpu) : null,
              peak_rss_mib: round(steady.window.peakRssBytes / MiB),
              pool_waiting: steady.window.poolWaiting ? { mean: round(steady.window.poolWaiting.mean), peak: steady.window.poolWaiting.peak } : null,
              event_loop_delay_ms: { p50: round(steady.window.eventLoopDelayMs.p50), p99: round(steady.window.eventLoopDelayMs.p99), max: round(steady.window.eventLoopDelayMs.max) },
              gc_pauses: { count: steady.window.gc.count, total_ms: round(steady.window.gc.totalMs), max_ms: round(steady.window.gc.maxMs) },
            }
          : null,
        cpu_ms_per_model_call_whole_phase: roundCpu(steadyPhaseCpu),
        rss_mib: {
          before: round(steady.rss.baselineBytes / MiB),
          peak: round(steady.rss.peakBytes / MiB),
          heap_at_peak: round(steady.rss.heapAtPeakBytes / MiB),
          after_gc: steady.rss.afterGc ? round(steady.rss.afterGc.rssBytes / MiB) : null,
          heap_after_gc: steady.rss.afterGc ? round(steady.rss.afterGc.heapUsedBytes / MiB) : null,
        },
      },
      burst: {
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
await runBenchmark("chat", flags.strict, (resources) => main(resources, flags));
