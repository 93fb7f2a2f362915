import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { createRoute, z } from "@hono/zod-openapi";
import { AgentLogsRequest, AgentMetadataRequest, AgentScriptRun, type AgentConfig } from "@kiln/workspace-daemon/agent-protocol";
import type { MiddlewareHandler } from "hono";
import { eq } from "drizzle-orm";
import * as Agents from "../../agents/index.ts";
import { createDaemonBundler } from "../../agents/daemon-bundle.ts";
import * as AgentDuties from "../../agents/duties.ts";
import { unixInitScript } from "../../agents/init-script.ts";
import { users, workspaces } from "../../db/schema.ts";
import { KilnError, NotFoundError, UnauthorizedError } from "../../errors.ts";
import * as AgentTailnet from "../../tailnet/agents.ts";
import { createRouter } from "../app.ts";
import type { AppDeps, AppEnv } from "../context.ts";
import { AgentLifecycleRequest, AgentManifest, AgentTailnetJoin, AgentTailnetReport, errorResponses, json } from "../schemas.ts";
import { bearerToken } from "./auth.ts";

type AgentEnv = AppEnv & { Variables: { agent: Agents.Agent } };

/** Routes the workspace daemon calls with its build's agent token. */
export function agentRoutes(deps: AppDeps) {
  const app = createRouter() as unknown as ReturnType<typeof createRouter> & { use: (path: string, handler: MiddlewareHandler<AgentEnv>) => void };
  const { db } = deps.database;
  const requireAgent: MiddlewareHandler<AgentEnv> = async (c, next) => {
    const token = bearerToken(c.req.header("authorization"));
    const agent = token ? await Agents.authenticate(db, token) : null;
    if (!agent) throw new UnauthorizedError("invalid or revoked agent token");
    c.set("agent", agent);
    await next();
  };
  app.use("*", requireAgent);
  const get = (c: { get(key: "agent"): Agents.Agent }) => c.get("agent");

  app.openapi(createRoute({
    method: "get", path: "/manifest", operationId: "agent.manifest", tags: ["agent"], security: [{ bearer: [] }],
    request: { query: z.object({ wait_ms: z.coerce.number().int().min(0).max(30_000).optional().describe("hold the request up to this long until the build has recorded the agent's configuration") }) },
    responses: { 200: json(AgentManifest, "What the daemon needs to know about its workspace"), 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => {
    let agent = get(c as never);
    // A daemon started during the apply asks before the build has stored its configuration: wait for it here.
    const deadline = Date.now() + (c.req.valid("query").wait_ms ?? 0);
    while (agent.config === null && Date.now() < deadline && !c.req.raw.signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      agent = (await Agents.latestForWorkspace(db, agent.workspaceId).then((latest) => (latest?.id === agent.id ? latest : null))) ?? agent;
    }
    const [row] = await db.select({ workspace: workspaces, owner: users }).from(workspaces).innerJoin(users, eq(users.id, workspaces.ownerId)).where(eq(workspaces.id, agent.workspaceId));
    return c.json({
      agent_id: agent.id, agent_name: agent.name, workspace_id: agent.workspaceId, workspace_name: row!.workspace.name, owner_name: row!.owner.username,
      config: (agent.config ?? null) as AgentConfig | null,
    }, 200);
  });

  app.openapi(createRoute({
    method: "post", path: "/lifecycle", operationId: "agent.lifecycle", tags: ["agent"], security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: AgentLifecycleRequest } }, required: true } },
    responses: { 204: { description: "Recorded" }, 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => {
    const agent = get(c as never);
    const body = c.req.valid("json");
    await Agents.update(db, agent.id, {
      lifecycleState: body.state, lastSeenAt: new Date(),
      ...(body.state === "starting" ? { startedAt: new Date() } : {}),
      ...(body.state === "ready" ? { readyAt: new Date() } : {}),
      ...(body.version ? { version: body.version } : {}),
      ...(body.operating_system ? { operatingSystem: body.operating_system } : {}),
      ...(body.architecture ? { architecture: body.architecture } : {}),
      ...(body.directory ? { directory: body.directory } : {}),
    });
    deps.log.info({ agentId: agent.id, workspaceId: agent.workspaceId, state: body.state }, "agent lifecycle");
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "post", path: "/tailnet/join", operationId: "agent.tailnetJoin", tags: ["agent"], security: [{ bearer: [] }],
    summary: "A single-use key and the control plane's credential, to join the tailnet for this build",
    responses: { 200: json(AgentTailnetJoin, "Join with this"), 401: errorResponses[401], 409: errorResponses[409] },
  }), async (c) => c.json(await AgentTailnet.join(deps, get(c as never)), 200));

  app.openapi(createRoute({
    method: "post", path: "/tailnet", operationId: "agent.tailnetReport", tags: ["agent"], security: [{ bearer: [] }],
    summary: "Where the daemon serves its API on the tailnet, or why it could not join",
    request: { body: { content: { "application/json": { schema: AgentTailnetReport } }, required: true } },
    responses: { 204: { description: "Recorded" }, 400: errorResponses[400], 401: errorResponses[401], 409: errorResponses[409] },
  }), async (c) => {
    await AgentTailnet.report(deps, get(c as never), c.req.valid("json"));
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "post", path: "/logs", operationId: "agent.logs", tags: ["agent"], security: [{ bearer: [] }],
    summary: "Output of the agent's scripts",
    request: { body: { content: { "application/json": { schema: AgentLogsRequest } }, required: true } },
    responses: { 204: { description: "Recorded" }, 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => {
    await AgentDuties.appendLogs(deps.database, get(c as never).id, c.req.valid("json").logs);
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "post", path: "/metadata", operationId: "agent.metadata", tags: ["agent"], security: [{ bearer: [] }],
    summary: "Values of the agent's metadata items (coder_agent metadata blocks)",
    request: { body: { content: { "application/json": { schema: AgentMetadataRequest } }, required: true } },
    responses: { 204: { description: "Recorded" }, 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => {
    await AgentDuties.recordMetadata(db, get(c as never).id, c.req.valid("json").metadata);
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "post", path: "/script-runs", operationId: "agent.scriptRuns", tags: ["agent"], security: [{ bearer: [] }],
    summary: "How the agent's script runs ended",
    request: { body: { content: { "application/json": { schema: z.object({ runs: z.array(AgentScriptRun).max(1000) }) } }, required: true } },
    responses: { 204: { description: "Recorded" }, 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => {
    await AgentDuties.recordScriptRuns(db, get(c as never).id, c.req.valid("json").runs);
    return c.body(null, 204);
  });

  return app;
}

/**
 * Public downloads for workspaces being bootstrapped by the init script: the kiln-daemon bundle (by version),
 * the init script itself, and this server's Node.js for workspaces without one on the same platform.
 */
export function agentDownloadRoutes(deps: AppDeps) {
  const app = createRouter();
  const bundler = deps.daemonBundler ?? createDaemonBundler();
  const serverPlatform = `${process.platform}-${process.arch}`;

  app.openapi(createRoute({
    method: "get", path: "/kiln-daemon", operationId: "agent.downloadDaemon", tags: ["agent"],
    summary: "The kiln-daemon bundle (one ES module file for Node ≥ 20); 404 unless `version` is this server's",
    request: { query: z.object({ version: z.string().max(64).optional().describe("the version the init script was rendered with") }) },
    responses: { 200: { description: "JavaScript", content: { "text/javascript": { schema: z.string() } } }, 404: errorResponses[404] },
  }), async (c) => {
    const bundle = await bundler.get();
    const requested = c.req.valid("query").version;
    if (requested && requested !== bundle.version) {
      throw new KilnError("version_unavailable", `this server serves kiln-daemon ${bundle.version}, not ${requested}; rebuild the workspace to get a matching init script`, 404, { available: bundle.version });
    }
    return new Response(new Uint8Array(bundle.content), {
      headers: { "content-type": "text/javascript; charset=utf-8", "content-length": String(bundle.content.length), "x-kiln-daemon-version": bundle.version, etag: `"${bundle.sha256}"`, "cache-control": "public, max-age=31536000, immutable" },
    }) as never;
  });

  app.openapi(createRoute({
    method: "get", path: "/init-script", operationId: "agent.initScript", tags: ["agent"],
    summary: "Kiln's agent init script as the Coder provider receives it (placeholders ${ACCESS_URL} and ${AUTH_TYPE} unreplaced)",
    responses: { 200: { description: "Shell script", content: { "text/x-shellscript": { schema: z.string() } } } },
  }), async (c) => {
    const bundle = await bundler.get();
    return c.body(unixInitScript({ daemon: bundle, nodeVersion: process.version }), 200, { "content-type": "text/x-shellscript; charset=utf-8" }) as never;
  });

  app.openapi(createRoute({
    method: "get", path: "/node", operationId: "agent.downloadNode", tags: ["agent"],
    summary: "This server's Node.js binary, for workspaces on the same platform that have no Node ≥ 20",
    request: { query: z.object({ platform: z.string().max(32).describe("e.g. linux-x64") }) },
    responses: { 200: { description: "Executable", content: { "application/octet-stream": { schema: z.string() } } }, 404: errorResponses[404] },
  }), async (c) => {
    const platform = c.req.valid("query").platform;
    if (platform !== serverPlatform) throw new NotFoundError(`a Node.js build for ${platform} (this server runs ${serverPlatform})`, { platform });
    return new Response(Readable.toWeb(createReadStream(process.execPath)) as ReadableStream, {
      headers: { "content-type": "application/octet-stream", "x-node-version": process.version },
    }) as never;
  });

  return app;
}
