import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import * as Auth from "../../auth/index.ts";
import { ConflictError, KilnError, UnauthorizedError } from "../../errors.ts";
import * as Users from "../../users/index.ts";
import { createRouter } from "../app.ts";
import type { AppDeps, AppEnv } from "../context.ts";
import { BootstrapRequest, CreateTokenRequest, errorResponses, json, LoginRequest, SessionResponse, TailnetDeviceKey, TokenResponse, User } from "../schemas.ts";

export const SESSION_COOKIE = "kiln_session";
/**
 * Cookie-authenticated requests that change something must carry this header. A cross-site form or
 * fetch cannot add it without a CORS preflight, which this server never grants, so it stops CSRF.
 */
export const CSRF_HEADER = "x-kiln-csrf";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

const CookieQuery = z.object({
  cookie: z.enum(["true", "false"]).optional().describe(`also set the HttpOnly '${SESSION_COOKIE}' session cookie (the dashboard's sign-in); needs the '${CSRF_HEADER}' header`),
});

function requireCsrfHeader(c: Context): void {
  if (!c.req.header(CSRF_HEADER)) {
    throw new KilnError("csrf_header_missing", `requests authenticated by the session cookie must send the '${CSRF_HEADER}: 1' header`, 403);
  }
}

/** Sets the dashboard's session cookie: HttpOnly (scripts cannot read it), SameSite=Lax, Secure over https. */
function setSessionCookie(c: Context, token: string): void {
  setCookie(c, SESSION_COOKIE, token, {
    path: "/", httpOnly: true, sameSite: "Lax", secure: new URL(c.req.url).protocol === "https:", maxAge: Math.floor(Auth.SESSION_LIFETIME_MS / 1000),
  });
}

export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return match?.[1] ?? null;
}

/** Authenticates the request (bearer token, or the dashboard's session cookie) and sets `actor`. */
export function requireActor(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const bearer = bearerToken(c.req.header("authorization"));
    const token = bearer ?? getCookie(c, SESSION_COOKIE) ?? null;
    if (!token) throw new UnauthorizedError("authentication required: send 'Authorization: Bearer <token>' (run 'kiln login')");
    if (!bearer && !SAFE_METHODS.has(c.req.method)) requireCsrfHeader(c);
    const actor = await Auth.authenticate(deps.database.db, token);
    c.set("actor", actor);
    c.set("log", c.get("log").child({ userId: actor.user.id }));
    await next();
  };
}

export function authRoutes(deps: AppDeps) {
  const app = createRouter();
  const { db } = deps.database;

  app.openapi(createRoute({
    method: "get", path: "/buildinfo", operationId: "buildinfo.get", tags: ["auth"],
    responses: { 200: json(z.object({ version: z.string(), has_users: z.boolean() }).openapi("BuildInfo"), "Server version and whether first-user setup is still open") },
  }), async (c) => c.json({ version: deps.version, has_users: await Auth.hasUsers(db) }, 200));

  app.openapi(createRoute({
    method: "get", path: "/auth/session", operationId: "auth.session", tags: ["auth"],
    summary: "Who is signed in (by bearer token or session cookie), or null; never a 401, so the dashboard can ask before signing in",
    responses: { 200: json(z.object({ user: z.union([User, z.null()]) }).openapi("CurrentSession"), "The signed-in user, or null") },
  }), async (c) => {
    const token = bearerToken(c.req.header("authorization")) ?? getCookie(c, SESSION_COOKIE) ?? null;
    if (!token) return c.json({ user: null }, 200);
    try {
      return c.json({ user: Users.toPublic((await Auth.authenticate(db, token)).user) }, 200);
    } catch (error) {
      if (error instanceof KilnError && (error.status === 401 || error.status === 403)) return c.json({ user: null }, 200);
      throw error;
    }
  });

  app.openapi(createRoute({
    method: "post", path: "/users/first", operationId: "auth.bootstrap", tags: ["auth"],
    summary: "Create the first user (the owner) of a new deployment",
    request: { query: CookieQuery, body: { content: { "application/json": { schema: BootstrapRequest } }, required: true } },
    responses: { 201: json(SessionResponse, "The owner and a session token"), 400: errorResponses[400], 403: errorResponses[403], 409: errorResponses[409] },
  }), async (c) => {
    const withCookie = c.req.valid("query").cookie === "true";
    if (withCookie) requireCsrfHeader(c);
    const { user, token } = await Auth.bootstrapFirstUser(db, c.req.valid("json"));
    if (withCookie) setSessionCookie(c, token);
    deps.log.info({ userId: user.id }, "first user created");
    return c.json({ token, user: Users.toPublic(user) }, 201);
  });

  app.openapi(createRoute({
    method: "post", path: "/auth/login", operationId: "auth.login", tags: ["auth"],
    request: { query: CookieQuery, body: { content: { "application/json": { schema: LoginRequest } }, required: true } },
    responses: { 200: json(SessionResponse, "A session token"), 400: errorResponses[400], 401: errorResponses[401], 403: errorResponses[403] },
  }), async (c) => {
    const withCookie = c.req.valid("query").cookie === "true";
    if (withCookie) requireCsrfHeader(c);
    const { user, token } = await Auth.login(db, c.req.valid("json"));
    if (withCookie) setSessionCookie(c, token);
    return c.json({ token, user: Users.toPublic(user) }, 200);
  });

  return app;
}

/** Routes about the caller's own session; mounted behind requireActor. */
export function sessionRoutes(deps: AppDeps) {
  const authenticated = createRouter();
  const { db } = deps.database;

  authenticated.openapi(createRoute({
    method: "post", path: "/auth/logout", operationId: "auth.logout", tags: ["auth"], security: [{ bearer: [] }],
    summary: "Revoke the token that made this request (and clear the session cookie)",
    responses: { 204: { description: "Revoked" }, 401: errorResponses[401], 403: errorResponses[403] },
  }), async (c) => {
    const actor = c.get("actor");
    await Auth.revokeToken(db, actor, actor.tokenId);
    if (getCookie(c, SESSION_COOKIE) !== undefined) deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.body(null, 204);
  });

  authenticated.openapi(createRoute({
    method: "get", path: "/users/me", operationId: "users.me", tags: ["users"], security: [{ bearer: [] }],
    responses: { 200: json(User, "The authenticated user"), 401: errorResponses[401] },
  }), (c) => c.json(Users.toPublic(c.get("actor").user), 200));

  authenticated.openapi(createRoute({
    method: "post", path: "/users/me/tokens", operationId: "tokens.create", tags: ["users"], security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: CreateTokenRequest } }, required: true } },
    responses: { 201: json(TokenResponse, "The token; shown only once"), 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => {
    const body = c.req.valid("json");
    const created = await Auth.createApiToken(db, c.get("actor"), { name: body.name, lifetimeMs: body.lifetime_seconds ? body.lifetime_seconds * 1000 : undefined });
    return c.json(created, 201);
  });

  authenticated.openapi(createRoute({
    method: "delete", path: "/users/me/tokens/{id}", operationId: "tokens.delete", tags: ["users"], security: [{ bearer: [] }],
    request: { params: z.object({ id: z.string().min(1) }) },
    responses: { 204: { description: "Revoked" }, 401: errorResponses[401] },
  }), async (c) => {
    await Auth.revokeToken(db, c.get("actor"), c.req.valid("param").id);
    return c.body(null, 204);
  });

  authenticated.openapi(createRoute({
    method: "post", path: "/users/me/tailnet-device-key", operationId: "tailnet.deviceKey", tags: ["users"], security: [{ bearer: [] }],
    summary: "A single-use key that joins one of your devices to the tailnet; it reaches only your workspaces, on their SSH ports",
    responses: { 201: json(TailnetDeviceKey, "The key; shown only once"), 401: errorResponses[401], 409: errorResponses[409] },
  }), async (c) => {
    const tailnet = deps.tailnet;
    if (!tailnet) throw new ConflictError("tailnet_disabled", "this deployment runs no tailnet (start the server with --tailnet)");
    if (tailnet.mode !== "embedded") throw new ConflictError("tailnet_external", "the tailnet's coordination server is external: ask its operator to add your device");
    if (!tailnet.deviceSsh) throw new ConflictError("tailnet_device_ssh_disabled", "device SSH over the tailnet is off on this deployment (KILN_TAILNET_DEVICE_SSH)");
    const actor = c.get("actor");
    const key = await tailnet.deviceKey({ id: actor.user.id });
    deps.log.info({ userId: actor.user.id }, "tailnet device key issued");
    return c.json({ ...key, command: `tailscale up --login-server=${key.login_server} --auth-key=${key.auth_key}` }, 201);
  });

  return authenticated;
}
