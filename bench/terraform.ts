/**
 * Terraform provisioning benchmark, in one run against a real in-process `kiln server` (Postgres when
 * installed, else embedded PGlite), the pinned terraform + Coder provider, and the `local` template:
 *
 *   1. raw: `terraform init` + `terraform apply` of terraform/local by hand in a fresh directory, with the
 *      same variables and Coder environment Kiln sets, versus the same build through Kiln (POST /workspaces
 *      → the build job's end, read from the log stream). Target: Kiln ≤ 1.3× raw.
 *   2. `kiln create` (the CLI process) → agent ready.
 *   3. 4 builds at once → all 4 agents ready.
 *
 *   npx tsx bench/terraform.ts [--quick] [--strict]
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Terraform } from "../provisioner/src/index.ts";
import { initScripts } from "../control-plane/src/agents/init-script.ts";
import { parseServerConfig } from "../control-plane/src/config.ts";
import { createLogger } from "../control-plane/src/logger.ts";
import { startServer } from "../control-plane/src/server/server.ts";
import { findPostgresBin, startPostgresCluster } from "../control-plane/src/testing/postgres-cluster.ts";
import { killDaemonsOf } from "../control-plane/src/testing/kiln-process.ts";
import { terraformEnvironment } from "../control-plane/src/provisioning/index.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const templateDirectory = path.resolve(here, "../terraform/local");
const kilnBin = path.resolve(here, "../control-plane/bin/kiln.mjs");
const flags = { quick: process.argv.includes("--quick"), strict: process.argv.includes("--strict") };
const ROUNDS = flags.quick ? 3 : 6;
const CLI_RUNS = flags.quick ? 2 : 4;
const CONCURRENT = 4;
const log = (message: string) => process.stderr.write(`${message}\n`);

interface Summary { n: number; p50: number; min: number; max: number }

/** Nearest-rank median with the extremes. */
function summarize(durations: number[]): Summary {
  const sorted = [...durations].sort((left, right) => left - right);
  return { n: sorted.length, p50: sorted[Math.max(0, Math.ceil(sorted.length / 2) - 1)]!, min: sorted[0]!, max: sorted.at(-1)! };
}

/** What the run started, released in reverse order however it ends. */
class Resources {
  private readonly releases: (() => Promise<void> | void)[] = [];
  temporaryDirectory(prefix: string): string {
    const directory = mkdtempSync(path.join(os.tmpdir(), prefix));
    this.releases.push(() => rmSync(directory, { recursive: true, force: true }));
    return directory;
  }
  defer(_name: string, release: () => Promise<void> | void): void {
    this.releases.push(release);
  }
  async release(): Promise<void> {
    while (this.releases.length > 0) await Promise.resolve(this.releases.pop()!()).catch((error) => log(`cleanup failed: ${error}`));
  }
}

async function main(): Promise<number> {
  const toolchain = Terraform.findToolchain({ terraformPath: process.env.KILN_TERRAFORM_PATH, cliConfigFile: process.env.KILN_TERRAFORM_CLI_CONFIG });
  if (!toolchain) throw new Error("no terraform: run node provisioner/scripts/toolchain.mjs first");
  const resources = new Resources();
  try {
    const postgresBin = findPostgresBin();
    let postgresUrl: string | undefined;
    if (postgresBin) {
      const cluster = await startPostgresCluster(postgresBin);
      resources.defer("postgres", () => cluster.stop());
      postgresUrl = cluster.url;
    }
    const dataDir = resources.temporaryDirectory("kiln-bench-tf-");
    const workspacesDirectory = path.join(dataDir, "workspaces");
    const server = await startServer(parseServerConfig({ dataDir, listen: "127.0.0.1:0", postgresUrl, logLevel: "silent" }), createLogger({ level: "silent" }));
    resources.defer("kiln server", async () => {
      await server.close();
      killDaemonsOf(server.accessUrl);
    });
    const url = server.accessUrl;
    log(`kiln server at ${url} (${postgresUrl ? "postgres" : "pglite"}), terraform ${toolchain.terraformPath}`);

    const bootstrap = await json("POST", `${url}/api/v1/users/first`, { email: "bench@example.com", username: "bench", password: "password-123" });
    const token = bootstrap.token as string;
    const call = (method: string, route: string, body?: unknown) => json(method, `${url}${route}`, body, token);
    const configDir = resources.temporaryDirectory("kiln-bench-cli-");
    writeFileSync(path.join(configDir, "session.json"), JSON.stringify({ url, token }));

    // "local" is the built-in (non-terraform) template's name, so the terraform one is pushed as local-tf.
    const pushed = await call("POST", "/api/v1/templates/local-tf/versions", {
      files: await Terraform.readTemplateDirectory(templateDirectory), variables: { workspaces_directory: workspacesDirectory },
    });
    const templateName = pushed.template.name as string;
    await until(async () => (await call("GET", `/api/v1/templates/${templateName}/versions/${pushed.version.id}`)).status === "succeeded", 120_000);
    log(`template ${templateName} imported`);

    // ── 1. raw terraform vs a build through Kiln ────────────────────────────────────────
    const bundle = await (async () => {
      const response = await fetch(`${url}/api/v1/agent/download/kiln-daemon`);
      return { version: response.headers.get("x-kiln-daemon-version")!, sha256: response.headers.get("etag")!.replaceAll('"', "") };
    })();
    const scripts = initScripts({ daemon: bundle, nodeVersion: process.version });
    const raw = { total: [] as number[], apply: [] as number[] };
    const kiln = { build: [] as number[], ready: [] as number[] };
    const rawRun = async (index: number) => {
      const directory = path.join(dataDir, "raw", String(index));
      mkdirSync(directory, { recursive: true });
      await Terraform.writeTemplateFiles(directory, await Terraform.readTemplateDirectory(templateDirectory));
      const workspaceId = randomUUID();
      const environment = (transition: "start" | "delete") => ({
        ...terraformEnvironment(),
        ...Terraform.coderEnvironment({
          accessUrl: url, transition, buildId: randomUUID(), workspace: { id: workspaceId, name: `raw-${index}`, ownerName: "bench", ownerEmail: "bench@example.com" },
          template: { id: randomUUID(), name: "local", versionName: "v1" }, parameters: {}, agentToken: transition === "start" ? `kiln-agent_raw${index}` : null, initScripts: scripts,
        }),
        TF_CLI_CONFIG_FILE: toolchain.cliConfigFile ?? "", CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1",
      });
      const variable = `-var=workspaces_directory=${path.join(dataDir, "raw-workspaces")}`;
      const started = performance.now();
      await run(toolchain.terraformPath, ["init", "-input=false", "-no-color"], directory, environment("start"));
      const applyStarted = performance.now();
      await run(toolchain.terraformPath, ["apply", "-json", "-auto-approve", "-input=false", variable], directory, environment("start"));
      raw.apply.push(performance.now() - applyStarted);
      raw.total.push(performance.now() - started);
      await run(toolchain.terraformPath, ["apply", "-destroy", "-json", "-auto-approve", "-input=false", variable], directory, environment("delete"));
    };
    const kilnRun = async (index: number) => {
      const name = `k-${index}`;
      const started = performance.now();
      await call("POST", "/api/v1/workspaces", { name, template: templateName });
      const status = await followBuild(url, token, name, 1);
      if (status !== "succeeded") throw new Error(`build of ${name} ${status}`);
      kiln.build.push(performance.now() - started);
      await until(async () => (await call("GET", `/api/v1/workspaces/${name}`)).agent?.lifecycle_state === "ready", 60_000);
      kiln.ready.push(performance.now() - started);
      await call("POST", `/api/v1/workspaces/${name}/builds`, { transition: "delete" });
      await followBuild(url, token, name, 2);
    };
    // One of each first, untimed: the first Kiln build of a version fills its init cache, the daemon bundle is built.
    await kilnRun(-1);
    await rawRun(-1);
    raw.total.length = raw.apply.length = kiln.build.length = kiln.ready.length = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await rawRun(round);
      await kilnRun(round);
    }
    log("raw vs kiln done");

    // ── 2. kiln create (CLI) → agent ready ─────────────────────────────────────────────
    const cli: number[] = [];
    for (let index = 0; index < CLI_RUNS; index++) {
      const name = `c-${index}`;
      const started = performance.now();
      const code = await runCode(process.execPath, [kilnBin, "create", name, "-t", templateName], { ...process.env, KILN_CONFIG_DIR: configDir });
      if (code !== 0) throw new Error(`kiln create ${name} exited ${code}`);
      cli.push(performance.now() - started);
      await call("POST", `/api/v1/workspaces/${name}/builds`, { transition: "delete" });
      await followBuild(url, token, name, 2);
    }
    log("kiln create done");

    // ── 3. four builds at once ──────────────────────────────────────────────────────────
    const concurrent: number[] = [];
    const startedAll = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT }, async (_, index) => {
      const name = `p-${index}`;
      const started = performance.now();
      await call("POST", "/api/v1/workspaces", { name, template: templateName });
      const status = await followBuild(url, token, name, 1);
      if (status !== "succeeded") throw new Error(`build of ${name} ${status}`);
      await until(async () => (await call("GET", `/api/v1/workspaces/${name}`)).agent?.lifecycle_state === "ready", 120_000);
      concurrent.push(performance.now() - started);
    }));
    const allReady = performance.now() - startedAll;
    await Promise.all(Array.from({ length: CONCURRENT }, async (_, index) => {
      await call("POST", `/api/v1/workspaces/p-${index}/builds`, { transition: "delete" });
      await followBuild(url, token, `p-${index}`, 2);
    }));

    // ── report ──────────────────────────────────────────────────────────────────────────
    const rawTotal = summarize(raw.total);
    const rawApply = summarize(raw.apply);
    const kilnBuild = summarize(kiln.build);
    const kilnReady = summarize(kiln.ready);
    const cliReady = summarize(cli);
    const concurrentEach = summarize(concurrent);
    const ratio = kilnBuild.p50 / rawTotal.p50;
    const row = (label: string, summary: Summary, note = "") => `  ${label.padEnd(44)} p50 ${ms(summary.p50)}  min ${ms(summary.min)}  max ${ms(summary.max)}  (n=${summary.n})${note}`;
    const lines = [
      `terraform provisioning (${os.cpus().length} CPUs, load average ${os.loadavg()[0]!.toFixed(1)}, ${postgresUrl ? "postgres" : "pglite"}):`,
      row("raw terraform init + apply (by hand)", rawTotal),
      row("raw terraform apply alone", rawApply),
      row("kiln build (POST → build succeeded)", kilnBuild, `  = ${ratio.toFixed(2)}× raw init+apply`),
      row("kiln POST → agent ready", kilnReady),
      row("kiln create (CLI process) → agent ready", cliReady),
      row(`${CONCURRENT} concurrent builds, each → agent ready`, concurrentEach),
      `  ${`${CONCURRENT} concurrent builds, all agents ready`.padEnd(44)} ${ms(allReady)}`,
    ];
    const pass = ratio <= 1.3;
    lines.push(`target: kiln build ≤ 1.3× raw terraform init + apply … ${pass ? "PASS" : "FAIL"} (${ratio.toFixed(2)}×)`);
    process.stdout.write(`${lines.join("\n")}\n`);
    process.stdout.write(`${JSON.stringify({
      bench: "terraform", rawInitApplyP50: rawTotal.p50, rawApplyP50: rawApply.p50, kilnBuildP50: kilnBuild.p50, ratio, kilnReadyP50: kilnReady.p50,
      cliCreateReadyP50: cliReady.p50, concurrentEachP50: concurrentEach.p50, concurrentAllReady: allReady, pass,
    })}\n`);
    return flags.strict && !pass ? 1 : 0;
  } finally {
    await resources.release();
  }
}

const ms = (value: number) => `${value.toFixed(0).padStart(6)} ms`;

async function json(method: string, url: string, body?: unknown, token?: string): Promise<any> {
  const response = await fetch(url, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: HTTP ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Follows a build's log stream until its `end` event; returns the job status. */
async function followBuild(url: string, token: string, workspace: string, build: number): Promise<string> {
  const response = await fetch(`${url}/api/v1/workspaces/${workspace}/builds/${build}/logs?follow=true`, { headers: { authorization: `Bearer ${token}` } });
  let buffer = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += Buffer.from(chunk).toString("utf8");
    const match = /event: end\ndata: (.*)\n/.exec(buffer);
    if (match) return (JSON.parse(match[1]!) as { job_status: string }).job_status;
  }
  throw new Error("build log stream ended without an end event");
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms`);
}

function run(command: string, args: string[], cwd: string, env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args[0]} exited ${code}: ${stderr}`))));
  });
}

function runCode(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "ignore", "ignore"] });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

process.exitCode = await main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  return 1;
});
