import { existsSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { kiln, killDaemonsOf, processEnvironment, startKilnServer, temporaryDirectory, type KilnServerProcess } from "../testing/kiln-process.ts";

/** The whole spine through real processes: kiln server, the kiln CLI, kiln-daemon over the relay tunnel. */
describe("kiln server + CLI + daemon (Postgres)", () => {
  let database: TestDatabase;
  let server: KilnServerProcess;
  const config = temporaryDirectory("kiln-cli-");
  const other = temporaryDirectory("kiln-cli-other-");
  const cli = (args: string[]) => kiln(args, { configDir: config.path });

  beforeAll(async () => {
    database = await createTestDatabase();
    if (!database.url) throw new Error("this test needs Postgres");
    server = await startKilnServer({ postgresUrl: database.url });
  });

  afterAll(async () => {
    await server?.stop();
    if (server) killDaemonsOf(server.url);
    await database?.close();
    config.remove();
    other.remove();
  });

  it("bootstraps the first user from the CLI", async () => {
    const login = await cli(["login", server.url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"]);
    expect(login.stderr).toContain("Created the first user 'me' (owner)");
    expect(login.code).toBe(0);
    const templates = await cli(["templates", "list", "--output", "json"]);
    expect(JSON.parse(templates.stdout).map((template: { name: string }) => template.name)).toContain("local");
  });

  it("creates a local workspace and runs a command in it through the tunnel", async () => {
    const create = await cli(["create", "dev", "--template", "local"]);
    expect(create.stderr).toContain("starting kiln-daemon");
    expect(create.code, create.stderr).toBe(0);
    const exec = await cli(["exec", "dev", "--", "sh", "-c", "echo hi > f && cat f"]);
    expect(exec).toMatchObject({ code: 0, stdout: "hi\n" });
    const failing = await cli(["exec", "dev", "--", "sh", "-c", "echo oops >&2; exit 3"]);
    expect(failing).toMatchObject({ code: 3, stderr: "oops\n" });
    const list = JSON.parse((await cli(["list", "--output", "json"])).stdout);
    expect(list[0]).toMatchObject({ name: "dev", status: "running", agent: { lifecycle_state: "ready", connected: true } });
  });

  it("keeps another user out of the workspace", async () => {
    const owner = await cli(["exec", "dev", "--", "true"]);
    expect(owner.code).toBe(0);
    const token = JSON.parse(await (await fetch(`${server.url}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ login: "me", password: "password-123" }) })).text()).token;
    await fetch(`${server.url}/api/v1/users`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ email: "eve@example.com", username: "eve", password: "password-123" }) });
    expect((await kiln(["login", server.url, "--login", "eve", "--password", "password-123"], { configDir: other.path })).code).toBe(0);
    const exec = await kiln(["exec", "me/dev", "--", "cat", "f"], { configDir: other.path });
    expect(exec.code).toBe(1);
    expect(exec.stderr).toContain("workspace not found");
    expect(exec.stdout).toBe("");
  });

  it("survives a control-plane crash: the daemon reconnects", async () => {
    await server.stop("SIGKILL");
    server = await startKilnServer({ postgresUrl: database.url, port: server.port, dataDir: server.dataDir });
    const exec = await cli(["exec", "dev", "--", "cat", "f"]);
    expect(exec).toMatchObject({ code: 0, stdout: "hi\n" });
  });

  it("stops and starts with the workspace's files kept", async () => {
    expect((await cli(["stop", "dev"])).code).toBe(0);
    const stopped = await cli(["exec", "dev", "--", "true"]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain("not running");
    expect((await cli(["start", "dev"])).code).toBe(0);
    expect(await cli(["exec", "dev", "--", "cat", "f"])).toMatchObject({ code: 0, stdout: "hi\n" });
  });

  it("refuses the build's agent token once the workspace is deleted", async () => {
    const client = new pg.Client({ connectionString: database.url! });
    await client.connect();
    const { rows } = await client.query("SELECT provisioner_state FROM workspace_builds ORDER BY created_at DESC LIMIT 1");
    await client.end();
    const state = rows[0].provisioner_state as { pid: number; directory: string };
    const token = processEnvironment(state.pid).KILN_AGENT_TOKEN!;
    expect(token).toMatch(/^kiln-agent_/);

    const accepted = await fetch(`${server.url}/api/v1/agent/manifest`, { headers: { authorization: `Bearer ${token}` } });
    expect(accepted.status).toBe(200);
    const deleted = await cli(["delete", "dev"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(existsSync(path.join(state.directory))).toBe(false);

    const refused = await fetch(`${server.url}/api/v1/agent/lifecycle`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ state: "ready" }) });
    expect(refused.status).toBe(401);
    const upgrade = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`${server.url.replace("http", "ws")}/api/v1/agent/relay`, { headers: { authorization: `Bearer ${token}` } });
      socket.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
      socket.on("open", () => reject(new Error("relay accepted a deleted workspace's token")));
      socket.on("error", () => {});
    });
    expect(upgrade).toBe(401);
    expect(JSON.parse((await cli(["list", "--output", "json"])).stdout)).toEqual([]);
  });

  it("reports bad CLI input clearly", async () => {
    const badName = await cli(["create", "Bad_Name", "--template", "local"]);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain("invalid workspace name");
    const badTemplate = await cli(["create", "x", "--template", "nope"]);
    expect(badTemplate.stderr).toContain("template 'nope' does not exist");
  });
});

describe("kiln server on embedded PGlite (smoke)", () => {
  let server: KilnServerProcess;
  const config = temporaryDirectory("kiln-cli-");
  const cli = (args: string[]) => kiln(args, { configDir: config.path });

  beforeAll(async () => {
    server = await startKilnServer();
  });
  afterAll(async () => {
    await server?.stop();
    if (server) killDaemonsOf(server.url);
    config.remove();
  });

  it("logs in, creates a workspace, runs a command, deletes it", async () => {
    expect((await cli(["login", server.url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"])).code).toBe(0);
    expect((await cli(["create", "dev", "--template", "local"])).code).toBe(0);
    expect(await cli(["exec", "dev", "--", "sh", "-c", "echo hi > f && cat f"])).toMatchObject({ code: 0, stdout: "hi\n" });
    expect((await cli(["delete", "dev"])).code).toBe(0);
  });
});
