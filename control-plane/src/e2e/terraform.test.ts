import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { kiln, killDaemonsOf, startKilnServer, temporaryDirectory, type KilnServerProcess } from "../testing/kiln-process.ts";
import { localTemplateDirectory, terraformToolchain } from "../testing/terraform.ts";

const toolchain = terraformToolchain();

/** Terraform templates end to end: real kiln server, real terraform and Coder provider, the real init script and daemon. */
describe.skipIf(!toolchain)("terraform templates (kiln server + CLI + terraform + kiln-daemon)", { timeout: 180_000 }, () => {
  let database: TestDatabase;
  let server: KilnServerProcess;
  const config = temporaryDirectory("kiln-tf-cli-");
  const workspaces = temporaryDirectory("kiln-tf-workspaces-");
  const scratch = temporaryDirectory("kiln-tf-templates-");
  const cli = (args: string[], timeoutMs = 120_000) => kiln(args, { configDir: config.path, timeoutMs });
  let token = "";
  const api = async (method: string, route: string, body?: unknown) => {
    const response = await fetch(`${server.url}${route}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const sql = async (query: string, values: unknown[] = []) => {
    const client = new pg.Client({ connectionString: database.url! });
    await client.connect();
    try {
      return (await client.query(query, values)).rows;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    if (!database.url) throw new Error("this test needs Postgres");
    server = await startKilnServer({ postgresUrl: database.url });
    const login = await cli(["login", server.url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"]);
    expect(login.code, login.stderr).toBe(0);
    token = JSON.parse(readFileSync(path.join(config.path, "session.json"), "utf8")).token;
  });

  afterAll(async () => {
    await server?.stop();
    if (server) killDaemonsOf(server.url);
    await database?.close();
    for (const directory of [config, workspaces, scratch]) directory.remove();
  });

  it("pushes the local template; its import extracts parameters, agents, scripts, apps and metadata", async () => {
    const push = await cli(["templates", "push", localTemplateDirectory, "--name", "local-tf", "--variable", `workspaces_directory=${workspaces.path}`]);
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toContain("[plan] Plan: 6 to add");
    expect(push.stdout).toMatch(/greeting\s+string\s+"hello"\s+yes\s+matches \^\[a-z \]\+\$/);
    const version = JSON.parse((await cli(["templates", "show", "local-tf", "-o", "json"])).stdout);
    expect(version).toMatchObject({ name: "v1", status: "succeeded", active: true, variables: ["workspaces_directory"] });
    expect(version.parameters).toEqual([
      expect.objectContaining({ name: "greeting", type: "string", default: "hello", mutable: true, required: false, validation: expect.objectContaining({ regex: "^[a-z ]+$" }) }),
      expect.objectContaining({ name: "history_lines", type: "number", default: "1000", mutable: false, validation: expect.objectContaining({ min: 10, max: 100000 }) }),
    ]);
    expect(version.agents).toHaveLength(1);
    expect(version.agents[0]).toMatchObject({
      name: "main",
      scripts: [expect.objectContaining({ display_name: "startup_script", run_on_start: true, start_blocks_login: true }), expect.objectContaining({ display_name: "shutdown_script", run_on_stop: true }), expect.objectContaining({ display_name: "motd", run_on_start: true })],
      apps: [expect.objectContaining({ slug: "daemon-log", command: "tail -f .kiln-daemon.log" })],
      metadata: [expect.objectContaining({ key: "home_files" }), expect.objectContaining({ key: "load", interval: 5 })],
    });
    expect(version.resources).toEqual(expect.arrayContaining([expect.objectContaining({ address: "terraform_data.home", metadata: [expect.objectContaining({ key: "directory" })] })]));
    const versions = JSON.parse((await cli(["templates", "versions", "local-tf", "-o", "json"])).stdout);
    expect(versions.map((entry: { name: string }) => entry.name)).toEqual(["v1"]);
  });

  it("refuses bad parameters with a 400 before any build is queued", async () => {
    const before = await sql("SELECT count(*)::int AS count FROM provisioner_jobs WHERE type = 'workspace_build'");
    const bad = await api("POST", "/api/v1/workspaces", { name: "bad", template: "local-tf", parameters: { greeting: "NOT LOWER", history_lines: "5", nope: "x" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues).toEqual(expect.arrayContaining([
      { field: "parameters.greeting", reason: expect.stringContaining("Use lowercase letters and spaces only") },
      { field: "parameters.history_lines", reason: expect.stringContaining("less than the minimum 10") },
      { field: "parameters.nope", reason: expect.stringContaining("unknown parameter") },
    ]));
    const viaCli = await cli(["create", "bad", "-t", "local-tf", "-p", "history_lines=ten"]);
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toContain("parameters.history_lines");
    expect(await sql("SELECT count(*)::int AS count FROM provisioner_jobs WHERE type = 'workspace_build'")).toEqual(before);
    expect(await sql("SELECT name FROM workspaces WHERE name = 'bad'")).toEqual([]);
  });

  it("builds a workspace with parameters, streaming Terraform's log while it runs; the agent runs its scripts and kiln exec works", async () => {
    const created = await api("POST", "/api/v1/workspaces", { name: "dev", template: "local-tf", parameters: { greeting: "hi there" } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // Follow the build as it happens: log events must arrive while the job is still running.
    const events: { event: string; data: string }[] = [];
    const response = await fetch(`${server.url}/api/v1/workspaces/dev/builds/1/logs?follow=true`, { headers: { authorization: `Bearer ${token}` } });
    let buffer = "";
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += Buffer.from(chunk).toString("utf8");
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        events.push({ event: /^event: (.*)$/m.exec(block)?.[1] ?? "", data: /^data: (.*)$/m.exec(block)?.[1] ?? "" });
      }
      if (events.at(-1)?.event === "end") break;
    }
    expect(events.at(-1)).toEqual({ event: "end", data: JSON.stringify({ job_status: "succeeded" }) });
    const logs = events.filter((entry) => entry.event === "log").map((entry) => JSON.parse(entry.data).output as string);
    expect(logs).toEqual(expect.arrayContaining([expect.stringContaining("terraform_data.home: Creation complete"), "Apply complete! Resources: 6 added, 0 changed, 0 destroyed."]));
    const firstLog = events.findIndex((entry) => entry.event === "log");
    expect(events.slice(firstLog).some((entry) => entry.event === "status" && entry.data.includes('"running"'))).toBe(true);

    const ready = await waitFor(async () => {
      const workspace = (await api("GET", "/api/v1/workspaces/dev")).body;
      return workspace.agent?.connected && workspace.agent.lifecycle_state === "ready" ? workspace : null;
    });
    expect(ready.status).toBe("running");
    const exec = await cli(["exec", "dev", "--", "sh", "-c", "cat greeting.txt .motd; echo \"$HISTSIZE $KILN_TEMPLATE\"; echo \"token:${CODER_AGENT_TOKEN:-none}${KILN_AGENT_TOKEN:-}\""]);
    expect(exec.stderr).toBe("");
    expect(exec).toMatchObject({ code: 0, stdout: "hi there, me\nWelcome to dev (Kiln local template)\n1000 local\ntoken:none\n" });

    const info = await waitFor(async () => {
      const body = (await api("GET", "/api/v1/workspaces/dev/agent-info")).body;
      return body.agent.metadata.every((item: { value: string | null }) => item.value !== null) && body.agent.script_runs.length >= 2 ? body : null;
    });
    expect(info.agent).toMatchObject({ name: "main", lifecycle_state: "ready", apps: [expect.objectContaining({ slug: "daemon-log" })] });
    expect(info.agent.script_runs).toEqual(expect.arrayContaining([
      expect.objectContaining({ script: "startup_script", stage: "start", status: "ok", exit_code: 0 }),
      expect.objectContaining({ script: "motd", stage: "start", status: "ok" }),
    ]));
    expect(info.agent.metadata.find((item: { key: string }) => item.key === "home_files").value).toMatch(/^\d+$/);
    const home = info.resources.find((resource: { address: string }) => resource.address === "terraform_data.home").metadata[0].value as string;
    expect(home.startsWith(workspaces.path)).toBe(true);
    const agentLogs = await cli(["logs", "dev", "--agent"]);
    expect(agentLogs.stdout).toContain("[startup_script] startup script ran for dev");
    const show = await cli(["show", "dev"]);
    expect(show.stdout).toContain("agent main: ready, connected");
    expect(show.stdout).toMatch(/Files in home: \d+/);
  });

  it("stops and starts again with the state and the home directory kept; shutdown scripts run", async () => {
    const stop = await cli(["stop", "dev"]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stderr).toContain("stopped the agent");
    const stopped = (await api("GET", "/api/v1/workspaces/dev")).body;
    expect(stopped).toMatchObject({ status: "stopped", agent: { connected: false } });
    // A start may change mutable parameters only; the refusal comes before any build.
    const immutable = await api("POST", "/api/v1/workspaces/dev/builds", { transition: "start", parameters: { history_lines: "50" } });
    expect(immutable.status).toBe(400);
    expect(immutable.body.error.details.issues[0]).toEqual({ field: "parameters.history_lines", reason: expect.stringContaining("is immutable") });
    const start = await cli(["start", "dev"]);
    expect(start.code, start.stderr).toBe(0);
    const exec = await cli(["exec", "dev", "--", "sh", "-c", "cat greeting.txt; grep -c 'stopped at' shutdown.log"]);
    expect(exec).toMatchObject({ code: 0, stdout: "hi there, me\n1\n" });
    // The home directory resource survived the stop: the same one is in the new state.
    const [state] = await sql("SELECT provisioner_state FROM workspace_builds WHERE build_number = 3 AND workspace_id = (SELECT id FROM workspaces WHERE name = 'dev')");
    expect(JSON.stringify(state.provisioner_state)).toContain("terraform_data");
  });

  it("deletes the workspace: terraform destroys the home directory and the agent", async () => {
    const info = (await api("GET", "/api/v1/workspaces/dev/agent-info")).body;
    const home = info.resources.find((resource: { address: string }) => resource.address === "terraform_data.home").metadata[0].value as string;
    const pid = Number(readFileSync(path.join(home, ".kiln-daemon.pid"), "utf8"));
    const removed = await cli(["delete", "dev"]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stderr).toContain("Destruction complete");
    expect(existsSync(home)).toBe(false);
    expect(isAlive(pid)).toBe(false);
    expect(JSON.parse((await cli(["list", "-o", "json"])).stdout)).toEqual([]);
  });

  it("ends a failing build 'failed' with Terraform's error visible, and can still delete what it made", async () => {
    const directory = path.join(scratch.path, "failing");
    mkdirSync(directory, { recursive: true });
    writeFileSync(path.join(directory, "main.tf"), `terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
data "coder_workspace" "me" {}
resource "coder_agent" "main" {
  os   = "linux"
  arch = "amd64"
}
resource "terraform_data" "machine" {
  count = data.coder_workspace.me.start_count
  provisioner "local-exec" {
    command = "echo 'no capacity left in zone z9' >&2; exit 3"
  }
}
`);
    expect((await cli(["templates", "push", directory, "--name", "failing"])).code).toBe(0);
    const create = await cli(["create", "broken", "-t", "failing"]);
    expect(create.code).toBe(1);
    expect(create.stderr).toContain("no capacity left in zone z9");
    expect(create.stderr).toMatch(/build #1 failed: terraform apply failed: Error: local-exec provisioner error/);
    const workspace = (await api("GET", "/api/v1/workspaces/broken")).body;
    expect(workspace).toMatchObject({ status: "failed", latest_build: { job_status: "failed", error: expect.stringContaining("exit status 3") } });
    const logs = await cli(["logs", "broken"]);
    expect(logs.stdout).toContain("no capacity left in zone z9");
    // The failed apply's state (the agent it did create) was kept, so delete destroys it.
    const removed = await cli(["delete", "broken"]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stderr).toContain("coder_agent.main: Destruction complete");
  });

  it("shows Terraform's diagnostics when a version does not import", async () => {
    const directory = path.join(scratch.path, "invalid");
    mkdirSync(directory, { recursive: true });
    writeFileSync(path.join(directory, "main.tf"), `resource "terraform_data" "x" {\n  input = undefined_thing.value\n}\n`);
    const push = await cli(["templates", "push", directory, "--name", "invalid"]);
    expect(push.code).toBe(1);
    expect(push.stderr).toContain("Reference to undeclared resource");
    const versions = JSON.parse((await cli(["templates", "versions", "invalid", "-o", "json"])).stdout);
    expect(versions[0]).toMatchObject({ status: "failed", active: false, error: expect.stringContaining("Reference to undeclared resource") });
    const create = await api("POST", "/api/v1/workspaces", { name: "never", template: "invalid" });
    expect(create.status).toBe(409);
    expect(create.body.error).toMatchObject({ code: "no_active_version", message: expect.stringContaining("has no usable version yet") });
  });
});

async function waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result) return result;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${last}` : ""}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
