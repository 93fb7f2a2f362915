import { createRoute, z } from "@hono/zod-openapi";
import * as Templates from "../../templates/index.ts";
import { createRouter } from "../app.ts";
import type { AppDeps } from "../context.ts";
import { errorResponses, json, Template } from "../schemas.ts";

export function templateRoutes(deps: AppDeps) {
  const app = createRouter();
  const { db } = deps.database;

  app.openapi(createRoute({
    method: "get", path: "/templates", operationId: "templates.list", tags: ["templates"], security: [{ bearer: [] }],
    request: { query: z.object({ q: z.string().max(100).optional() }) },
    responses: { 200: json(z.object({ templates: z.array(Template) }), "Templates"), 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => c.json({ templates: (await Templates.list(db, { query: c.req.valid("query").q })).map(Templates.toPublic) }, 200));

  app.openapi(createRoute({
    method: "get", path: "/templates/{template}", operationId: "templates.get", tags: ["templates"], security: [{ bearer: [] }],
    request: { params: z.object({ template: z.string().min(1) }) },
    responses: { 200: json(Template, "A template"), 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => c.json(Templates.toPublic(await Templates.get(db, c.req.valid("param").template)), 200));

  return app;
}
