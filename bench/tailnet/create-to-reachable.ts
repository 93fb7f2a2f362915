/**
 * The "create → reachable over the tailnet" figure, end to end through a real in-process `kiln server
 * --tailnet` (embedded headscale, its control-plane tailscaled) with the relay fallback off, so a ping that
 * answers can only have crossed the tailnet. Per workspace: `POST /api/v1/workspaces` (template `local`: the
 * provisioner spawns a kiln-daemon, which gets a preauth key, starts its userspace tailscaled, joins and reports
 * its endpoint) → the first `GET /workspaces/{ws}/ping` answering transport "tailnet"; then the workspace is
 * deleted and gone before the next one is created.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseServerConfig } from "../../control-plane/src/config.ts";
import { createLogger } from "../../control-plane/src/logger.ts";
import { startServer, type RunningServer } from "../../control-plane/src/server/server.ts";
import { killDaemonsOf } from "../../control-plane/src/testing/kiln-process.ts";
import { findPostgresBin, startPostgresCluster } from "../../control-plane/src/testing/postgres-cluster.ts";
import type { Iterations } from "../lib/measure.ts";
import type { Resources } from "../lib/resources.ts";

/** Milliseconds after the POST was sent, each seen by polling every POLL_MS (so each is up to that late). */
export interface CreateSample {
  workspace: string;
  /** The POST answered 201 (the build is queued). */
  createdMs: number;
  /** The local provisioner spawned the kiln-daemon (its build log line "kiln-daemon running"). */
  spawnedMs: number;
  /** The kiln-daemon process has loaded its modules and logged "kiln-daemon starting" (its log's clock). */
  daemonMs: number;
  /** The daemon's WebSocket to the relay is up (the server's RelayServer, checked in process). */
  relayMs: number;
  /** The daemon logged "joined the tailnet": key fetched, tailscaled started and up, endpoint reported. */
  joinedMs: number;
  /** agent-info shows the tailnet address and port the daemon reported after joining. */
  endpointMs: number;
  /** Lifecycle `ready` (the template's startup scripts done). */
  readyMs: number;
  /** The first ping that answered transport "tailnet": the API dialed the daemon over WireGuard and got a PING back. */
  reachableMs: number;
  /** `tailscale ping`'s path at that moment: direct or derp. */
  path: string;
  /** How long the ping that answered took: dial, HTTP/2 PING, then `tailscale ping` for the path (a CLI process). */
  lastPingMs: number;
  /** Pings sent, the one that answered included (a ping waits up to 5 s server-side for the endpoint). */
  pings: number;
}

export interface CreateRun {
  database: "postgres" | "pglite";
  samples: CreateSample[];
}

const POLL_MS = 50;
const TIMEOUT_MS = 60_000;

interface Api {
  call(method: string, route: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

/** The parts of the API's answers read here (control-plane/src/api/schemas.ts has them all). */
interface AgentInfo {
  agent: { id: string; lifecycle_state: string; directory: string | null; tailnet: { address: string; port: number } | null } | null;
}
interface Ping {
  transport: "tailnet" | "relay";
  path: "direct" | "derp" | "relay";
}
interface Workspace {
  status: string;
  latest_build: unknown;
}

function apiOf(url: string, token?: string): Api {
  return {
    async call(method, route, body) {
      const response = await fetch(`${url}/api/v1${route}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep the text for the error message
      }
      return { status: response.status, body: parsed };
    },
  };
}

async function expectStatus(api: Api, expected: number, method: string, route: string, body?: unknown): Promise<unknown> {
  const response = await api.call(method, route, body);
  if (response.status !== expected) throw new Error(`${method} ${route}: HTTP ${response.status} ${JSON.stringify(response.body).slice(0, 500)}`);
  return response.body;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `step` once, however often it is called: cleanup that runs both at the end of the phase and from Resources. */
function once(step: () => Promise<void> | void): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= Promise.resolve().then(step));
}

/** tailscaled processes whose state dir is under `directory`: the daemons' own, which a SIGKILLed daemon leaves behind. */
function tailscaledUnder(directory: string): number[] {
  const output = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return output.split("\n").filter((line) => line.includes("tailscaled") && line.includes(`--statedir=${directory}/`)).map((line) => Number(line.trim().split(/\s+/)[0]));
}

/** When (epoch ms) the local provisioner's daemon logged that it started and that it joined the tailnet. */
function daemonLogTimes(file: string): { starting: number; joined: number } {
  const times = new Map<string, number>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { time: number; msg: string };
    if (!times.has(entry.msg)) times.set(entry.msg, entry.time);
  }
  const starting = times.get("kiln-daemon starting");
  const joined = times.get("joined the tailnet");
  if (starting === undefined || joined === undefined) throw new Error(`${file} lacks "kiln-daemon starting" or "joined the tailnet"`);
  return { starting, joined };
}

/** One workspace from POST to reachable over the tailnet, then deleted. */
async function createOnce(server: RunningServer, api: Api, name: string): Promise<CreateSample> {
  const started = performance.now();
  const since = () => performance.now() - started;
  const marks: Partial<Omit<CreateSample, "workspace" | "path" | "pings" | "lastPingMs" | "spawnedMs" | "daemonMs" | "joinedMs">> = {};
  const startedAt = Date.now();
  let finished = false;

  const created = api.call("POST", "/workspaces", { name, template: "local" }).then((response) => {
    if (response.status !== 201) throw new Error(`POST /workspaces: HTTP ${response.status} ${JSON.stringify(response.body).slice(0, 500)}`);
    marks.createdMs = since();
  });

  // agent-info for the relay connection, lifecycle and the reported endpoint, every POLL_MS until all three are seen.
  const watchAgent = (async () => {
    while (!finished && (marks.relayMs === undefined || marks.endpointMs === undefined || marks.readyMs === undefined)) {
      const response = await api.call("GET", `/workspaces/${name}/agent-info`);
      const agent = response.status === 200 ? (response.body as AgentInfo).agent : null;
      if (agent) {
        if (marks.relayMs === undefined && server.relay.isConnected(agent.id)) marks.relayMs = since();
        if (marks.endpointMs === undefined && agent.tailnet) marks.endpointMs = since();
        if (marks.readyMs === undefined && agent.lifecycle_state === "ready") marks.readyMs = since();
      }
      if (since() > TIMEOUT_MS) throw new Error(`${name}: agent not connected, joined and ready after ${TIMEOUT_MS} ms: ${JSON.stringify(agent).slice(0, 500)}`);
      await sleep(POLL_MS);
    }
  })();

  // Ping until one answers over the tailnet. Before the agent exists the API answers 409 at once; once it does, a
  // ping without relay fallback waits server-side for the endpoint and the peer, up to its 5 s dial budget.
  let pings = 0;
  let path = "";
  let lastPingMs = 0;
  const watchPing = (async () => {
    let last: unknown;
    while (!finished) {
      pings += 1;
      const sent = performance.now();
      const response = await api.call("GET", `/workspaces/${name}/ping`);
      const ping = response.body as Ping;
      if (response.status === 200 && ping.transport === "tailnet") {
        marks.reachableMs = since();
        lastPingMs = performance.now() - sent;
        path = ping.path;
        return;
      }
      if (response.status === 200) throw new Error(`${name}: ping answered over ${ping.transport} with the relay fallback off`);
      last = response.body;
      if (since() > TIMEOUT_MS) throw new Error(`${name}: not reachable over the tailnet after ${TIMEOUT_MS} ms (${pings} pings; last ${JSON.stringify(last).slice(0, 500)})`);
      await sleep(POLL_MS);
    }
  })();

  try {
    await Promise.all([created, watchPing, watchAgent]);
  } finally {
    finished = true;
  }
  const { directory } = ((await expectStatus(api, 200, "GET", `/workspaces/${name}/agent-info`)) as AgentInfo).agent ?? {};
  if (!directory) throw new Error(`${name}: agent-info has no directory`);
  const daemonLog = daemonLogTimes(join(directory, "..", "daemon.log"));
  const buildLog = (await expectStatus(api, 200, "GET", `/workspaces/${name}/builds/1/logs`)) as { logs: { created_at: string; output: string }[] };
  const spawnedAt = buildLog.logs.find((line) => line.output.startsWith("kiln-daemon running"))?.created_at;
  if (!spawnedAt) throw new Error(`${name}: no "kiln-daemon running" line in the build log`);
  await expectStatus(api, 201, "POST", `/workspaces/${name}/builds`, { transition: "delete" });
  const deadline = performance.now() + TIMEOUT_MS;
  for (;;) {
    const response = await api.call("GET", `/workspaces/${name}`);
    const workspace = response.body as Workspace;
    if (response.status === 404 || workspace.status === "deleted") break;
    if (workspace.status === "failed") throw new Error(`${name}: delete failed: ${JSON.stringify(workspace.latest_build)}`);
    if (performance.now() > deadline) throw new Error(`${name}: not deleted after ${TIMEOUT_MS} ms (status ${workspace.status})`);
    await sleep(POLL_MS);
  }
  const { createdMs, relayMs, endpointMs, readyMs, reachableMs } = marks as Required<typeof marks>;
  const spawnedMs = Date.parse(spawnedAt) - startedAt;
  const daemonMs = daemonLog.starting - startedAt;
  const joinedMs = daemonLog.joined - startedAt;
  return { workspace: name, createdMs, spawnedMs, daemonMs, relayMs, joinedMs, endpointMs, readyMs, reachableMs, path, lastPingMs, pings };
}

/**
 * Starts the server (Postgres in a throwaway cluster when installed, else PGlite), makes the owner through the
 * API, creates `warmup` untimed workspaces (the first daemon start compiles and caches), then `measured` timed
 * ones, one at a time. Stops the server and the daemons and removes its directories before returning.
 */
export async function measureCreateToReachable(resources: Resources, iterations: Iterations, log: (line: string) => void): Promise<CreateRun> {
  const steps: (() => Promise<void>)[] = [];
  const cleanup = (name: string, step: () => Promise<void> | void) => {
    const release = once(step);
    resources.defer(name, release);
    steps.push(release);
  };
  try {
    const postgresBin = findPostgresBin();
    let postgresUrl: string | undefined;
    if (postgresBin) {
      const cluster = await startPostgresCluster(postgresBin);
      cleanup("postgres cluster", () => cluster.stop());
      postgresUrl = cluster.url;
    }
    const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-tailnet-server-"));
    cleanup(`directory ${dataDir}`, () => rmSync(dataDir, { recursive: true, force: true }));
    // An empty environment: KILN_* variables of the shell must not change what is measured.
    const config = parseServerConfig({ dataDir, listen: "127.0.0.1:0", postgresUrl, logLevel: "silent", tailnet: true, tailnetRelayFallback: false }, {});
    const server = await startServer(config, createLogger({ level: "silent" }));
    cleanup("kiln server --tailnet", async () => {
      await server.close();
      killDaemonsOf(server.accessUrl);
      // A SIGKILLed daemon leaves its tailscaled running; those are under this server's data dir.
      for (const pid of tailscaledUnder(dataDir)) process.kill(pid, "SIGKILL");
    });
    const owner = (await expectStatus(apiOf(server.accessUrl), 201, "POST", "/users/first", { email: "bench@example.com", username: "bench", password: "bench-password-123" })) as { token: string };
    const api = apiOf(server.accessUrl, owner.token);
    const database = server.database.kind === "postgres" ? "postgres" : "pglite";
    log(`kiln server --tailnet at ${server.accessUrl} (${database}, relay fallback off)`);

    const samples: CreateSample[] = [];
    for (let index = 0; index < iterations.warmup + iterations.measured; index += 1) {
      const warmup = index < iterations.warmup;
      const sample = await createOnce(server, api, warmup ? `warmup-${index + 1}` : `reach-${index - iterations.warmup + 1}`);
      const seconds = (value: number) => (value / 1000).toFixed(2);
      log(`  ${sample.workspace}${warmup ? " (warm-up, not counted)" : ""}: create → reachable ${seconds(sample.reachableMs)} s (spawned ${seconds(sample.spawnedMs)}, daemon up ${seconds(sample.daemonMs)}, relay ${seconds(sample.relayMs)}, endpoint ${seconds(sample.endpointMs)}, ${sample.path}, ${sample.pings} pings)`);
      if (!warmup) samples.push(sample);
    }
    return { database, samples };
  } finally {
    for (const step of steps.reverse()) await step();
  }
}
