import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseToken } from "../auth/tokens.ts";
import { createTestApp, type TestApp } from "../testing/app.ts";
import { openApiDocument } from "./openapi.ts";

let t: TestApp;
beforeEach(async () => {
  t = await createTestApp();
});
afterEach(async () => t.close());

describe("health and auth", () => {
  it("answers health without a token and refuses API calls without one", async () => {
    expect((await t.call("GET", "/healthz")).status).toBe(200);
    const refused = await t.call("GET", "/api/v1/workspaces");
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe("unauthorized");
    expect((await t.call("GET", "/api/v1/users/me", { token: "kiln_0123456789abcdef_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" })).status).toBe(401);
  });

  it("bootstraps the first user as owner, once", async () => {
    expect((await t.call("GET", "/api/v1/buildinfo")).body.has_users).toBe(false);
    const token = await t.owner();
    const me = await t.call("GET", "/api/v1/users/me", { token });
    expect(me.body).toMatchObject({ username: "owner", role: "owner" });
    const again = await t.call("POST", "/api/v1/users/first", { body: { email: "x@example.com", username: "x", password: "password-123" } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("already_bootstrapped");
  });

  it("rejects bad bootstrap input naming the field and the reason, and creates nothing", async () => {
    const bad = await t.call("POST", "/api/v1/users/first", { body: { email: "not-an-email", username: "Bad Name", password: "short" } });
    expect(bad.status).toBe(400);
    const fields = bad.body.error.details.issues.map((issue: { field: string }) => issue.field).sort();
    expect(fields).toEqual(["email", "password", "username"]);
    expect(bad.body.error.message).toMatch(/password: at least 8 characters/);
    expect((await t.call("GET", "/api/v1/buildinfo")).body.has_users).toBe(false);
    const notJson = await t.call("POST", "/api/v1/users/first", { body: "{nope" });
    expect(notJson.status).toBe(400);
  });

  it("logs in, rejects a wrong password, and revokes on logout", async () => {
    await t.owner();
    const wrong = await t.call("POST", "/api/v1/auth/login", { body: { login: "owner", password: "wrong password" } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe("invalid_credentials");
    const login = await t.call("POST", "/api/v1/auth/login", { body: { login: "OWNER@example.com", password: "correct horse battery" } });
    expect(login.status).toBe(200);
    const token = login.body.token;
    expect((await t.call("POST", "/api/v1/auth/logout", { token })).status).toBe(204);
    expect((await t.call("GET", "/api/v1/users/me", { token })).status).toBe(401);
  });

  it("issues API tokens that work until revoked; stored only hashed", async () => {
    const owner = await t.owner();
    const created = await t.call("POST", "/api/v1/users/me/tokens", { token: owner, body: { name: "ci" } });
    expect(created.status).toBe(201);
    expect((await t.call("GET", "/api/v1/users/me", { token: created.body.token })).status).toBe(200);
    const stored = JSON.stringify(await t.database.db.query.apiTokens.findMany());
    // The whole secret (base64url: it may hold "_" itself, so not split on it).
    const secret = parseToken(created.body.token)?.secret;
    expect(secret).toHaveLength(32);
    expect(stored).not.toContain(secret);
    expect((await t.call("DELETE", `/api/v1/users/me/tokens/${created.body.id}`, { token: owner })).status).toBe(204);
    expect((await t.call("GET", "/api/v1/users/me", { token: created.body.token })).status).toBe(401);
    expect((await t.call("POST", "/api/v1/users/me/tokens", { token: owner, body: { name: "" } })).status).toBe(400);
  });
});

describe("users and roles", () => {
  it("lets admins manage users and keeps members out", async () => {
    const owner = await t.owner();
    const member = await t.user("mia");
    expect((await t.call("GET", "/api/v1/users", { token: member })).status).toBe(403);
    const listed = await t.call("GET", "/api/v1/users", { token: owner });
    expect(listed.body.users.map((user: { username: string }) => user.username)).toEqual(["owner", "mia"]);
    const duplicate = await t.call("POST", "/api/v1/users", { token: owner, body: { email: "MIA@example.com", username: "mia2", password: "password-123" } });
    expect(duplicate.status).toBe(409);
    const promote = await t.call("PATCH", `/api/v1/users/${listed.body.users[1].id}`, { token: owner, body: { role: "admin" } });
    expect(promote.body.role).toBe("admin");
    const badRole = await t.call("PATCH", `/api/v1/users/${listed.body.users[1].id}`, { token: owner, body: { role: "owner" } });
    expect(badRole.status).toBe(400);
    expect(badRole.body.error.details.issues[0].field).toBe("role");
  });
});

describe("templates and workspaces", () => {
  it("lists the built-in local template", async () => {
    const token = await t.owner();
    const listed = await t.call("GET", "/api/v1/templates", { token });
    expect(listed.body.templates.map((template: { name: string }) => template.name)).toContain("local");
    expect((await t.call("GET", "/api/v1/templates/nope", { token })).status).toBe(404);
  });

  it("creates a workspace with a pending build and refuses bad input", async () => {
    const token = await t.owner();
    const created = await t.call("POST", "/api/v1/workspaces", { token, body: { name: "dev", template: "local" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "dev", status: "pending", template_name: "local", latest_build: { build_number: 1, transition: "start", job_status: "pending" } });

    const badName = await t.call("POST", "/api/v1/workspaces", { token, body: { name: "Not Valid!", template: "local" } });
    expect(badName.status).toBe(400);
    expect(badName.body.error.details).toMatchObject({ field: "name" });
    const badTemplate = await t.call("POST", "/api/v1/workspaces", { token, body: { name: "other", template: "missing" } });
    expect(badTemplate.status).toBe(400);
    expect(badTemplate.body.error.details).toMatchObject({ field: "template" });
    const missing = await t.call("POST", "/api/v1/workspaces", { token, body: { template: "local" } });
    expect(missing.body.error.details.issues[0]).toMatchObject({ field: "name" });
    const duplicate = await t.call("POST", "/api/v1/workspaces", { token, body: { name: "dev", template: "local" } });
    expect(duplicate.status).toBe(409);
    expect((await t.call("GET", "/api/v1/workspaces", { token })).body.workspaces).toHaveLength(1);
  });

  it("refuses a second build while one is in progress", async () => {
    const token = await t.owner();
    await t.call("POST", "/api/v1/workspaces", { token, body: { name: "dev", template: "local" } });
    const stop = await t.call("POST", "/api/v1/workspaces/dev/builds", { token, body: { transition: "stop" } });
    expect(stop.status).toBe(409);
    expect(stop.body.error.code).toBe("build_in_progress");
    const bad = await t.call("POST", "/api/v1/workspaces/dev/builds", { token, body: { transition: "explode" } });
    expect(bad.status).toBe(400);
    const cancel = await t.call("POST", "/api/v1/workspaces/dev/builds/cancel", { token });
    expect(cancel.body.status).toBe("canceled");
  });

  it("hides one user's workspace from another, but not from admins", async () => {
    const owner = await t.owner();
    const alice = await t.user("alice");
    const bob = await t.user("bob");
    const created = await t.call("POST", "/api/v1/workspaces", { token: alice, body: { name: "secret", template: "local" } });
    expect((await t.call("GET", "/api/v1/workspaces", { token: bob })).body.workspaces).toEqual([]);
    expect((await t.call("GET", `/api/v1/workspaces/${created.body.id}`, { token: bob })).status).toBe(404);
    expect((await t.call("GET", "/api/v1/workspaces/alice/secret", { token: bob })).status).toBe(404);
    expect((await t.call("POST", `/api/v1/workspaces/${created.body.id}/builds`, { token: bob, body: { transition: "delete" } })).status).toBe(404);
    expect((await t.call("POST", `/api/v1/workspaces/${created.body.id}/exec`, { token: bob, body: { command: "id" } })).status).toBe(404);
    expect((await t.call("GET", `/api/v1/workspaces/${created.body.id}/agent/v1/info`, { token: bob })).status).toBe(404);
    expect((await t.call("GET", `/api/v1/workspaces/${created.body.id}`, { token: owner })).status).toBe(200);
    const all = await t.call("GET", "/api/v1/workspaces?all=true", { token: owner });
    expect(all.body.workspaces.map((workspace: { owner_name: string }) => workspace.owner_name)).toEqual(["alice"]);
    const bobAll = await t.call("GET", "/api/v1/workspaces?all=true", { token: bob });
    expect(bobAll.body.workspaces).toEqual([]);
  });

  it("says a workspace without a connected agent is not reachable", async () => {
    const token = await t.owner();
    await t.call("POST", "/api/v1/workspaces", { token, body: { name: "dev", template: "local" } });
    const exec = await t.call("POST", "/api/v1/workspaces/dev/exec", { token, body: { command: "true" } });
    expect(exec.status).toBe(409);
    expect(exec.body.error.code).toBe("workspace_not_running");
  });
});

describe("agent routes", () => {
  it("refuses calls without a valid agent token", async () => {
    const refused = await t.call("POST", "/api/v1/agent/lifecycle", { token: "kiln-agent_bogus", body: { state: "ready" } });
    expect(refused.status).toBe(401);
  });
});

describe("openapi", () => {
  it("serves the document and the committed copy is current (run 'pnpm openapi' after changing routes)", async () => {
    const served = await t.call("GET", "/api/v1/openapi.json");
    expect(served.status).toBe(200);
    expect(Object.keys(served.body.paths)).toContain("/api/v1/workspaces");
    const committed = JSON.parse(readFileSync(path.resolve(import.meta.dirname, "../../openapi.json"), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
  });
});
