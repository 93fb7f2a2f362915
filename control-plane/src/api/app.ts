import { randomUUID } from "node:crypto";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { KilnError, type ErrorBody } from "../errors.ts";
import type { AppDeps, AppEnv } from "./context.ts";
import { agentDownloadRoutes, agentRoutes } from "./routes/agent.ts";
import { toolNames } from "../chats/tools/index.ts";
import { adminRoutes } from "./routes/admin.ts";
import { chatRoutes } from "./routes/chats.ts";
import { authRoutes, requireActor, sessionRoutes } from "./routes/auth.ts";
import { templateRoutes } from "./routes/templates.ts";
import { userRoutes } from "./routes/users.ts";
import { workspaceRoutes } from "./routes/workspaces.ts";
import { dashboardRoutes } from "../web/dashboard.ts";

export type App = OpenAPIHono<AppEnv>;

/** Validation failures name the field and the reason: `details.issues[] = { field, reason }`. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues.map((issue) => ({ field: issue.path.join(".") || "(body)", reason: issue.message }));
      const summary = issues.map((issue) => `${issue.field}: ${issue.reason}`).join("; ");
      return c.json({ error: { code: "invalid_request", message: `invalid request: ${summary}`, details: { issues } } } satisfies ErrorBody, 400);
    },
  });
}

export function createApp(deps: AppDeps): App {
  const app = createRouter();

  app.use("*", async (c, next) => {
    const requestId = c.req.header("x-request-id")?.slice(0, 64) || randomUUID();
    const log = deps.log.child({ requestId });
    c.set("requestId", requestId);
    c.set("log", log);
    c.header("x-request-id", requestId);
    const started = performance.now();
    await next();
    const status = c.res.status;
    const fields = { method: c.req.method, path: c.req.path, status, durationMs: Math.round((performance.now() - started) * 10) / 10 };
    if (status >= 500) log.error(fields, "request failed");
    else log.debug(fields, "request");
  });

  app.onError((error, c) => errorResponse(error, c));
  app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } } satisfies ErrorBody, 404));

  app.get("/healthz", async (c) => {
    if (!deps.tailnet) return c.json({ status: "ok", version: deps.version, database: deps.database.kind });
    // Liveness stays 200; a tailnet that is down degrades the server (the relay may still serve).
    const tailnet = await deps.tailnet.health();
    const healthy = tailnet.coordinator.healthy && tailnet.node.running;
    return c.json({
      status: healthy ? "ok" : "degraded", version: deps.version, database: deps.database.kind,
      tailnet: { mode: tailnet.mode, coordinator: tailnet.coordinator.healthy ? "ok" : "unreachable", node: tailnet.node.running ? "running" : "stopped" },
    });
  });

  // Unauthenticated: bootstrap, login, and the daemon-facing routes (which check agent tokens themselves).
  app.route("/api/v1", authRoutes(deps));
  // Downloads first: they are public, and the agent routes below require an agent token.
  app.route("/api/v1/agent/download", agentDownloadRoutes(deps));
  app.route("/api/v1/agent", agentRoutes(deps));

  app.doc31("/api/v1/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Kiln API", version: "1", description: "Control plane for AI coding agents and remote development workspaces." },
  });
  app.use("/api/v1/*", requireActor(deps));
  app.route("/api/v1", sessionRoutes(deps));
  app.route("/api/v1", userRoutes(deps));
  app.route("/api/v1", templateRoutes(deps));
  app.route("/api/v1", workspaceRoutes(deps));
  app.route("/api/v1", chatRoutes(deps));
  app.route("/api/v1", adminRoutes(deps, { toolNames }));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  // The dashboard (static files with an SPA fallback) answers every GET the API does not.
  if (deps.dashboard) app.route("/", dashboardRoutes(deps.dashboard));
  return app;
}

export function errorResponse(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof KilnError) {
    return c.json({ error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } } satisfies ErrorBody, error.status);
  }
  if (error instanceof HTTPException) {
    if (error.status < 500) return c.json({ error: { code: "bad_request", message: error.message || "bad request" } } satisfies ErrorBody, error.status);
  }
  if (error instanceof SyntaxError && /JSON/i.test(error.message)) {
    return c.json({ error: { code: "invalid_json", message: "request body is not valid JSON", details: { field: "(body)", reason: error.message } } } satisfies ErrorBody, 400);
  }
  (c.get("log") ?? console).error({ err: error }, "unhandled error");
  return c.json({ error: { code: "internal", message: "internal server error", details: { request_id: c.get("requestId") } } } satisfies ErrorBody, 500);
}
