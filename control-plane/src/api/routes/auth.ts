import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import * as Auth from "../../auth/index.ts";
import { UnauthorizedError } from "../../errors.ts";
import * as Users from "../../users/index.ts";
import { createRouter } from "../app.ts";
import type { AppDeps, AppEnv } from "../context.ts";
import { BootstrapRequest, CreateTokenRequest, errorResponses, json, LoginRequest, SessionResponse, TokenResponse, User } from "../schemas.ts";

export const SESSION_COOKIE = "kiln_session";

export function bearerToken(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return match?.[1] ?? null;
}

/** Authenticates the request (bearer token, or the dashboard's session cookie) and sets `actor`. */
export function requireActor(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header("authorization")) ?? getCookie(c, SESSION_COOKIE) ?? null;
    if (!token) throw new UnauthorizedError("authentication required: send 'Authorization: Bearer <token>' (run 'kiln login')");
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
    method: "post", path: "/users/first", operationId: "auth.bootstrap", tags: ["auth"],
    summary: "Create the first user (the owner) of a new deployment",
    request: { body: { content: { "application/json": { schema: BootstrapRequest } }, required: true } },
    responses: { 201: json(SessionResponse, "The owner and a session token"), 400: errorResponses[400], 409: errorResponses[409] },
  }), async (c) => {
    const { user, token } = await Auth.bootstrapFirstUser(db, c.req.valid("json"));
    deps.log.info({ userId: user.id }, "first user created");
    return c.json({ token, user: Users.toPublic(user) }, 201);
  });

  app.openapi(createRoute({
    method: "post", path: "/auth/login", operationId: "auth.login", tags: ["auth"],
    request: { body: { content: { "application/json": { schema: LoginRequest } }, required: true } },
    responses: { 200: json(SessionResponse, "A session token"), 400: errorResponses[400], 401: errorResponses[401], 403: errorResponses[403] },
  }), async (c) => {
    const { user, token } = await Auth.login(db, c.req.valid("json"));
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
    summary: "Revoke the token that made this request",
    responses: { 204: { description: "Revoked" }, 401: errorResponses[401] },
  }), async (c) => {
    const actor = c.get("actor");
    await Auth.revokeToken(db, actor, actor.tokenId);
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

  return authenticated;
}
