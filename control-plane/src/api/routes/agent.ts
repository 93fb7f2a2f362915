import { createRoute } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { eq } from "drizzle-orm";
import * as Agents from "../../agents/index.ts";
import { users, workspaces } from "../../db/schema.ts";
import { UnauthorizedError } from "../../errors.ts";
import { createRouter } from "../app.ts";
import type { AppDeps, AppEnv } from "../context.ts";
import { AgentLifecycleRequest, AgentManifest, errorResponses, json } from "../schemas.ts";
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
    responses: { 200: json(AgentManifest, "What the daemon needs to know about its workspace"), 401: errorResponses[401] },
  }), async (c) => {
    const agent = get(c as never);
    const [row] = await db.select({ workspace: workspaces, owner: users }).from(workspaces).innerJoin(users, eq(users.id, workspaces.ownerId)).where(eq(workspaces.id, agent.workspaceId));
    return c.json({ agent_id: agent.id, workspace_id: agent.workspaceId, workspace_name: row!.workspace.name, owner_name: row!.owner.username }, 200);
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
      ...(body.version ? { version: body.version } : {}),
      ...(body.operating_system ? { operatingSystem: body.operating_system } : {}),
      ...(body.architecture ? { architecture: body.architecture } : {}),
      ...(body.directory ? { directory: body.directory } : {}),
    });
    deps.log.info({ agentId: agent.id, workspaceId: agent.workspaceId, state: body.state }, "agent lifecycle");
    return c.body(null, 204);
  });

  return app;
}
