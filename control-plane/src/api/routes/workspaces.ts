import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { JOB_EVENTS_CHANNEL, logsAfter } from "../../jobs/queue.ts";
import * as Workspaces from "../../workspaces/index.ts";
import { connect } from "../../workspaces/connect.ts";
import { provisionerJobs } from "../../db/schema.ts";
import { eq } from "drizzle-orm";
import { KilnError } from "../../errors.ts";
import { createRouter } from "../app.ts";
import type { AppDeps } from "../context.ts";
import { AgentLog, BuildLog, CreateWorkspaceRequest, errorResponses, ExecRequest, json, TailnetPing, Workspace, WorkspaceAgentInfo, WorkspaceParam } from "../schemas.ts";
import * as Agents from "../../agents/index.ts";
import * as AgentDuties from "../../agents/duties.ts";
import { agentInfo } from "../../workspaces/agent-info.ts";

const TERMINAL_JOB_STATUSES = new Set(["succeeded", "failed", "canceled"]);

export function workspaceRoutes(deps: AppDeps) {
  const app = createRouter();
  const { database, tunnel } = deps;
  const { db } = database;
  const security = [{ bearer: [] }];

  app.openapi(createRoute({
    method: "get", path: "/workspaces", operationId: "workspaces.list", tags: ["workspaces"], security,
    request: { query: z.object({ all: z.enum(["true", "false"]).optional().describe("admins: every user's workspaces") }) },
    responses: { 200: json(z.object({ workspaces: z.array(Workspace) }), "Workspaces"), 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => c.json({ workspaces: await Workspaces.list(db, tunnel, c.get("actor"), { all: c.req.valid("query").all === "true" }) }, 200));

  app.openapi(createRoute({
    method: "post", path: "/workspaces", operationId: "workspaces.create", tags: ["workspaces"], security,
    request: { body: { content: { "application/json": { schema: CreateWorkspaceRequest } }, required: true } },
    responses: { 201: json(Workspace, "The workspace; its first build is queued"), ...errorResponses },
  }), async (c) => c.json(await Workspaces.create(database, tunnel, c.get("actor"), c.req.valid("json")), 201));

  app.openapi(createRoute({
    method: "get", path: "/workspaces/{workspace}", operationId: "workspaces.get", tags: ["workspaces"], security,
    request: { params: WorkspaceParam },
    responses: { 200: json(Workspace, "The workspace"), 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => c.json(await Workspaces.get(db, tunnel, c.get("actor"), c.req.valid("param").workspace), 200));

  app.openapi(createRoute({
    method: "post", path: "/workspaces/{workspace}/builds", operationId: "workspaces.build", tags: ["workspaces"], security,
    summary: "Start, stop or delete a workspace",
    request: {
      params: WorkspaceParam,
      body: {
        content: {
          "application/json": {
            schema: z.object({
              transition: z.enum(["start", "stop", "delete"]),
              parameters: z.record(z.string(), z.string()).optional().describe("start only: new values for mutable parameters"),
            }).openapi("BuildRequest"),
          },
        },
        required: true,
      },
    },
    responses: { 201: json(Workspace, "The workspace with its new build"), ...errorResponses },
  }), async (c) => {
    const body = c.req.valid("json");
    return c.json(await Workspaces.transition(database, tunnel, c.get("actor"), c.req.valid("param").workspace, body.transition, { parameters: body.parameters }), 201);
  });

  app.openapi(createRoute({
    method: "get", path: "/workspaces/{workspace}/agent-info", operationId: "workspaces.agentInfo", tags: ["workspaces"], security,
    summary: "The build's resources (with coder_metadata) and the agent: lifecycle, scripts and their runs, apps, metadata values",
    request: { params: WorkspaceParam },
    responses: { 200: json(WorkspaceAgentInfo, "Resources and agent"), 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => c.json(await agentInfo(db, tunnel, c.get("actor"), c.req.valid("param").workspace), 200));

  app.openapi(createRoute({
    method: "get", path: "/workspaces/{workspace}/agent-logs", operationId: "workspaces.agentLogs", tags: ["workspaces"], security,
    summary: "Output of the agent's startup, shutdown and cron scripts; with follow=true a text/event-stream (resume with Last-Event-ID)",
    request: { params: WorkspaceParam, query: z.object({ after: z.coerce.number().int().min(0).optional(), follow: z.enum(["true", "false"]).optional() }) },
    responses: {
      200: { description: "Log lines", content: { "application/json": { schema: z.object({ logs: z.array(AgentLog) }) }, "text/event-stream": { schema: z.string() } } },
      ...errorResponses,
    },
  }), async (c) => {
    const workspace = await Workspaces.find(db, c.get("actor"), c.req.valid("param").workspace);
    const agent = await Agents.latestForWorkspace(db, workspace.id);
    const query = c.req.valid("query");
    let after = query.after ?? (Number(c.req.header("last-event-id") ?? 0) || 0);
    const present = (row: Awaited<ReturnType<typeof AgentDuties.logsAfter>>[number]) => ({ id: row.id, created_at: row.createdAt.toISOString(), source: row.source, level: row.level, output: row.output });
    if (query.follow !== "true" || !agent) {
      return c.json({ logs: agent ? (await AgentDuties.logsAfter(db, agent.id, after, 10_000)).map(present) : [] }, 200);
    }
    return streamSSE(c, async (stream) => {
      let wake: () => void = () => {};
      const unlisten = await database.listen(AgentDuties.AGENT_LOGS_CHANNEL, (agentId) => agentId === agent.id && wake());
      stream.onAbort(() => wake());
      try {
        while (!stream.aborted) {
          const signal = new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000);
          });
          for (const row of await AgentDuties.logsAfter(db, agent.id, after)) {
            await stream.writeSSE({ id: String(row.id), event: "log", data: JSON.stringify(present(row)) });
            after = row.id;
          }
          await stream.writeSSE({ event: "heartbeat", data: "{}" });
          await signal;
        }
      } finally {
        await unlisten();
      }
    }) as never;
  });

  app.openapi(createRoute({
    method: "post", path: "/workspaces/{workspace}/builds/cancel", operationId: "workspaces.cancelBuild", tags: ["workspaces"], security,
    request: { params: WorkspaceParam },
    responses: { 200: json(Workspace, "The workspace"), ...errorResponses },
  }), async (c) => c.json(await Workspaces.cancelBuild(database, tunnel, c.get("actor"), c.req.valid("param").workspace), 200));

  app.openapi(createRoute({
    method: "get", path: "/workspaces/{workspace}/builds/{build}/logs", operationId: "workspaces.buildLogs", tags: ["workspaces"], security,
    summary: "Build logs; with follow=true a text/event-stream that ends when the build finishes (event ids resume via Last-Event-ID)",
    request: {
      params: WorkspaceParam.extend({ build: z.string().regex(/^(latest|\d+)$/, "a build number or 'latest'") }),
      query: z.object({ after: z.coerce.number().int().min(0).optional(), follow: z.enum(["true", "false"]).optional() }),
    },
    responses: {
      200: { description: "Log lines", content: { "application/json": { schema: z.object({ logs: z.array(BuildLog), job_status: z.string() }) }, "text/event-stream": { schema: z.string() } } },
      ...errorResponses,
    },
  }), async (c) => {
    const { workspace: reference, build: buildParam } = c.req.valid("param");
    const query = c.req.valid("query");
    const workspace = await Workspaces.find(db, c.get("actor"), reference);
    const build = await Workspaces.buildByNumber(db, workspace.id, buildParam === "latest" ? undefined : Number(buildParam));
    const jobStatus = async () => (await db.select({ status: provisionerJobs.status }).from(provisionerJobs).where(eq(provisionerJobs.id, build.jobId)))[0]?.status ?? "failed";
    const present = (row: Awaited<ReturnType<typeof logsAfter>>[number]) => ({ id: row.id, created_at: row.createdAt.toISOString(), level: row.level, stage: row.stage, output: row.output });
    let after = query.after ?? Number(c.req.header("last-event-id") ?? 0) ?? 0;
    if (query.follow !== "true") {
      return c.json({ logs: (await logsAfter(db, build.jobId, after, 10_000)).map(present), job_status: await jobStatus() }, 200);
    }
    return streamSSE(c, async (stream) => {
      let wake: () => void = () => {};
      const unlisten = await database.listen(JOB_EVENTS_CHANNEL, (jobId) => jobId === build.jobId && wake());
      stream.onAbort(() => wake());
      try {
        while (!stream.aborted) {
          const signal = new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000);
          });
          const status = await jobStatus();
          for (const row of await logsAfter(db, build.jobId, after)) {
            await stream.writeSSE({ id: String(row.id), event: "log", data: JSON.stringify(present(row)) });
            after = row.id;
          }
          if (TERMINAL_JOB_STATUSES.has(status)) {
            await stream.writeSSE({ event: "end", data: JSON.stringify({ job_status: status }) });
            return;
          }
          await stream.writeSSE({ event: "status", data: JSON.stringify({ job_status: status }) });
          await signal;
        }
      } finally {
        await unlisten();
      }
    }) as never;
  });

  app.openapi(createRoute({
    method: "get", path: "/workspaces/{workspace}/ping", operationId: "workspaces.ping", tags: ["workspaces"], security,
    summary: "How the control plane reaches the workspace's agent (tailnet direct, DERP, or relay) and the round trip",
    request: { params: WorkspaceParam },
    responses: { 200: json(TailnetPing, "Path and round trip"), ...errorResponses },
  }), async (c) => {
    const reference = c.req.valid("param").workspace;
    const connection = await connect(db, tunnel, c.get("actor"), reference);
    const roundTripMs = await connection.ping();
    const path = tunnel.pathOf?.(connection) ?? { via: "relay" as const };
    const agent = await Agents.latestForWorkspace(db, (await Workspaces.find(db, c.get("actor"), reference)).id);
    if (path.via === "relay" || !deps.tailnet) {
      return c.json({ transport: "relay" as const, path: "relay" as const, round_trip_ms: roundTripMs, tailnet: null, tailnet_error: agent?.tailnetError ?? null }, 200);
    }
    const peer = await deps.tailnet.ping(path.address).catch((error: unknown) => {
      throw new KilnError("tailnet_unreachable", `the tunnel answered but tailscale ping to ${path.address} got no pong`, 503, { cause: error instanceof Error ? error.message : String(error) });
    });
    return c.json({
      transport: "tailnet" as const, path: peer.path, round_trip_ms: roundTripMs,
      tailnet: { address: path.address, port: path.port, endpoint: peer.endpoint, wireguard_round_trip_ms: peer.roundTripMs },
      tailnet_error: null,
    }, 200);
  });

  app.openapi(createRoute({
    method: "post", path: "/workspaces/{workspace}/exec", operationId: "workspaces.exec", tags: ["workspaces"], security,
    summary: "Run a command in the workspace and stream its output as NDJSON (started, output with base64 data, exit)",
    request: { params: WorkspaceParam, body: { content: { "application/json": { schema: ExecRequest } }, required: true } },
    responses: { 200: { description: "NDJSON events", content: { "application/x-ndjson": { schema: z.string() } } }, ...errorResponses },
  }), async (c) => {
    const connection = await connect(db, tunnel, c.get("actor"), c.req.valid("param").workspace);
    const body = c.req.valid("json");
    const response = await connection.fetch("/v1/processes/stream", {
      method: "POST",
      headers: { "content-type": "application/json", "x-kiln-chat-id": `exec:${c.get("actor").user.id}` },
      body: JSON.stringify({ command: body.command, workdir: body.workdir, env: body.env, timeout_ms: body.timeout_ms ?? 4 * 3600 * 1000 }),
      signal: c.req.raw.signal,
    });
    return new Response(response.body, { status: response.status, headers: { "content-type": response.headers.get("content-type") ?? "application/x-ndjson" } }) as never;
  });

  // The daemon's own API (files, processes), proxied for the workspace's owner. Documented in docs/api.md.
  app.all("/workspaces/:workspace/agent/*", async (c) => {
    const connection = await connect(db, tunnel, c.get("actor"), c.req.param("workspace"));
    const url = new URL(c.req.url);
    const prefix = `/api/v1/workspaces/${encodeURIComponent(c.req.param("workspace"))}/agent`;
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname.replace(/^.*?\/agent/, "");
    const headers: Record<string, string> = {};
    for (const name of ["content-type", "x-kiln-chat-id", "accept"]) {
      const value = c.req.header(name);
      if (value) headers[name] = value;
    }
    const hasBody = c.req.method !== "GET" && c.req.method !== "HEAD";
    const response = await connection.fetch(`${path || "/"}${url.search}`, {
      method: c.req.method,
      headers,
      body: hasBody ? new Uint8Array(await c.req.arrayBuffer()) : undefined,
      signal: c.req.raw.signal,
    });
    const outgoing = new Headers();
    for (const name of ["content-type", "content-length"]) {
      const value = response.headers.get(name);
      if (value) outgoing.set(name, value);
    }
    return new Response(response.body, { status: response.status, headers: outgoing });
  });

  return app;
}
