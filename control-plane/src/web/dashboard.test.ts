import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../testing/app.ts";
import { temporaryDirectory } from "../testing/kiln-process.ts";
import { dashboardRoutes } from "./dashboard.ts";

describe("dashboard static files", () => {
  const directory = temporaryDirectory("kiln-dashboard-");
  const script = `console.log(${JSON.stringify("kiln ".repeat(400))});\n`;
  const app = dashboardRoutes({ directory: directory.path });
  beforeAll(() => {
    mkdirSync(path.join(directory.path, "assets"));
    writeFileSync(path.join(directory.path, "index.html"), `<!doctype html><title>Kiln</title>${"<!-- padding -->".repeat(60)}<div id="root"></div>`);
    writeFileSync(path.join(directory.path, "assets", "index-abc123.js"), script);
  });
  afterAll(() => directory.remove());

  it("serves hashed assets compressed and cached for a year", async () => {
    const brotli = await app.request("/assets/index-abc123.js", { headers: { "accept-encoding": "gzip, deflate, br" } });
    expect(brotli.status).toBe(200);
    expect(brotli.headers.get("content-encoding")).toBe("br");
    expect(brotli.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(brotli.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(brotliDecompressSync(Buffer.from(await brotli.arrayBuffer())).toString()).toBe(script);

    const gzip = await app.request("/assets/index-abc123.js", { headers: { "accept-encoding": "gzip" } });
    expect(gzip.headers.get("content-encoding")).toBe("gzip");
    expect(gunzipSync(Buffer.from(await gzip.arrayBuffer())).toString()).toBe(script);

    const plain = await app.request("/assets/index-abc123.js");
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect(await plain.text()).toBe(script);

    const revalidated = await app.request("/assets/index-abc123.js", { headers: { "if-none-match": plain.headers.get("etag")! } });
    expect(revalidated.status).toBe(304);
  });

  it("answers client-side routes with index.html, revalidated on every load", async () => {
    for (const route of ["/", "/chats/0b4f5c1e-3f5e-4c55-9d55-0d5b0c1e2f3a", "/admin/providers"]) {
      const response = await app.request(route);
      expect(response.status, route).toBe(200);
      expect(response.headers.get("cache-control")).toBe("no-cache");
      expect(response.headers.get("content-security-policy")).toContain("script-src 'self'");
      expect(await response.text()).toContain('<div id="root">');
    }
  });

  it("does not answer for the API, missing assets or paths outside the build", async () => {
    expect((await app.request("/assets/index-old999.js")).status).toBe(404);
    expect((await app.request("/favicon.ico")).status).toBe(404);
    expect((await app.request("/api/v1/nothing")).status).toBe(404);
    const escaped = await app.request("/..%2f..%2fetc%2fpasswd");
    expect(await escaped.text()).not.toContain("root:");
  });
});

describe("cookie sessions for the dashboard", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => t?.close());

  const body = async (response: Response) => (await response.json()) as { token?: string; error?: { code: string }; user?: { username: string } | null };
  const cookieOf = (response: Response) => /kiln_session=([^;]+)/.exec(response.headers.get("set-cookie") ?? "")?.[1];

  it("bootstrap and login set an HttpOnly SameSite=Lax cookie only when asked, with the CSRF header", async () => {
    const owner = JSON.stringify({ email: "owner@example.com", username: "owner", password: "correct horse battery" });
    const withoutHeader = await t.app.request("/api/v1/users/first?cookie=true", { method: "POST", headers: { "content-type": "application/json" }, body: owner });
    expect(withoutHeader.status).toBe(403);
    expect((await body(withoutHeader)).error?.code).toBe("csrf_header_missing");

    const bootstrap = await t.app.request("/api/v1/users/first?cookie=true", { method: "POST", headers: { "content-type": "application/json", "x-kiln-csrf": "1" }, body: owner });
    expect(bootstrap.status).toBe(201);
    const setCookie = bootstrap.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Lax/);
    expect(setCookie).toMatch(/Path=\//);
    expect(cookieOf(bootstrap)).toBe((await body(bootstrap)).token);

    const plainLogin = await t.app.request("/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ login: "owner", password: "correct horse battery" }) });
    expect(plainLogin.status).toBe(200);
    expect(plainLogin.headers.get("set-cookie")).toBeNull();
  });

  it("authenticates by cookie, demands the CSRF header on writes, and logout clears the cookie", async () => {
    const login = await t.app.request("/api/v1/auth/login?cookie=true", {
      method: "POST", headers: { "content-type": "application/json", "x-kiln-csrf": "1" }, body: JSON.stringify({ login: "owner", password: "correct horse battery" }),
    });
    const cookie = `kiln_session=${cookieOf(login)}`;
    const session = await t.app.request("/api/v1/auth/session", { headers: { cookie } });
    expect((await body(session)).user?.username).toBe("owner");
    expect((await body(await t.app.request("/api/v1/auth/session"))).user).toBeNull();
    expect((await body(await t.app.request("/api/v1/auth/session", { headers: { cookie: "kiln_session=bogus" } }))).user).toBeNull();

    expect((await t.app.request("/api/v1/users/me", { headers: { cookie } })).status).toBe(200);
    const forged = await t.app.request("/api/v1/admin/system-prompt", { method: "PUT", headers: { cookie, "content-type": "application/json" }, body: JSON.stringify({ system_prompt: "pwned" }) });
    expect(forged.status).toBe(403);
    const genuine = await t.app.request("/api/v1/admin/system-prompt", { method: "PUT", headers: { cookie, "content-type": "application/json", "x-kiln-csrf": "1" }, body: JSON.stringify({ system_prompt: "from the dashboard" }) });
    expect(genuine.status).toBe(200);
    // Bearer tokens (CLI, scripts) are not cookies and need no header.
    const token = (await t.call("POST", "/api/v1/auth/login", { body: { login: "owner", password: "correct horse battery" } })).body.token as string;
    expect((await t.call("PUT", "/api/v1/admin/system-prompt", { token, body: { system_prompt: null } })).status).toBe(200);

    const logout = await t.app.request("/api/v1/auth/logout", { method: "POST", headers: { cookie, "x-kiln-csrf": "1" } });
    expect(logout.status).toBe(204);
    expect(logout.headers.get("set-cookie")).toMatch(/kiln_session=;.*Max-Age=0/);
    expect((await t.app.request("/api/v1/users/me", { headers: { cookie } })).status).toBe(401);
  });
});
