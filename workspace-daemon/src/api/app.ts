import { randomUUID } from "node:crypto";
import { homedir, hostname } from "node:os";
import { performance } from "node:perf_hooks";
import { Hono } from "hono";
import type { Logger } from "pino";
import { DaemonError } from "../errors.ts";
import type { ProcessManager } from "../processes/index.ts";
import type { ErrorBody, InfoResponse } from "../protocol.ts";
import type { DaemonEnv } from "./context.ts";
import { fileRoutes } from "./files.ts";
import { processRoutes } from "./processes.ts";
import type { PtyManager } from "../pty/index.ts";
import { ptyRoutes } from "./pty.ts";

export interface DaemonAppDeps {
  /** Directory relative paths resolve against. */
  root: string;
  processes: ProcessManager;
  /** Terminal sessions; the `/v1/pty` routes exist only when given. */
  pty?: PtyManager;
  log: Logger;
  info: { version: string };
}

export const REQUEST_ID_HEADER = "x-request-id";
const MAX_REQUEST_ID_LENGTH = 200;

/** The id a request goes by: the caller's, if it sent a usable one, else a fresh one. */
export function requestIdFor(given: string | undefined): string {
  return given !== undefined && given.length <= MAX_REQUEST_ID_LENGTH ? given : randomUUID();
}

/** The daemon's HTTP API, independent of the transport that serves it. */
export function createDaemonApp(deps: DaemonAppDeps) {
  const log = deps.log.child({ module: "api" });
  const app = new Hono<DaemonEnv>();

  app.use(async (c, next) => {
    const requestId = requestIdFor(c.req.header(REQUEST_ID_HEADER));
    const requestLog = log.child({ requestId });
    c.set("requestId", requestId);
    c.set("log", requestLog);
    const started = performance.now();
    // Set before the handler runs, so responses built by the context (c.json, errors) carry it from the start.
    c.header(REQUEST_ID_HEADER, requestId);
    await next();
    // A handler that built its own Response (raw file bodies, event streams) gets it here. Not through
    // c.header: on a finished response that makes @hono/node-server replace its lightweight response
    // with a full web Response and stream the body through web streams, ~0.1 ms per request.
    if (!c.res.headers.has(REQUEST_ID_HEADER)) c.res.headers.set(REQUEST_ID_HEADER, requestId);
    if (requestLog.isLevelEnabled("debug")) {
      requestLog.debug({ method: c.req.method, path: c.req.path, status: c.res.status, durationMs: performance.now() - started }, "request handled");
    }
  });

  app.get("/v1/info", (c) => {
    const info: InfoResponse = {
      version: deps.info.version,
      os: process.platform,
      arch: process.arch,
      hostname: hostname(),
      home: homedir(),
      workdir: deps.root,
      pid: process.pid,
      uptime_ms: Math.round(process.uptime() * 1000),
    };
    return c.json(info);
  });
  app.route("/v1/files", fileRoutes(deps.root));
  app.route("/v1/processes", processRoutes(deps.processes));
  if (deps.pty) app.route("/v1/pty", ptyRoutes(deps.pty));

  app.notFound((c) => {
    const body: ErrorBody = { error: { code: "route_not_found", message: `no route for ${c.req.method} ${c.req.path}` } };
    return c.json(body, 404);
  });

  app.onError((error, c) => {
    const requestLog = c.get("log") ?? log;
    if (error instanceof DaemonError) {
      requestLog.debug({ code: error.code, details: error.details }, "request failed");
      const body: ErrorBody = { error: { code: error.code, message: error.message, details: error.details } };
      return c.json(body, error.status);
    }
    requestLog.error({ err: error, method: c.req.method, path: c.req.path }, "request crashed");
    const body: ErrorBody = { error: { code: "internal_error", message: "internal error" } };
    return c.json(body, 500);
  });

  return app;
}

export type DaemonApp = ReturnType<typeof createDaemonApp>;
