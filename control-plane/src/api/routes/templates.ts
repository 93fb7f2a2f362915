import { createRoute, z } from "@hono/zod-openapi";
import * as Templates from "../../templates/index.ts";
import * as TemplateVersions from "../../templates/versions.ts";
import { createRouter } from "../app.ts";
import type { AppDeps } from "../context.ts";
import { BuildLog, errorResponses, json, PushTemplateVersionRequest, Template, TemplateVersion } from "../schemas.ts";
import { jobLogsResponse } from "./job-logs.ts";

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

  const security = [{ bearer: [] }];
  const templateParam = z.object({ template: z.string().min(1).openapi({ param: { name: "template", in: "path" }, description: "template name or id" }) });
  const versionParam = templateParam.extend({ version: z.string().min(1).openapi({ param: { name: "version", in: "path" }, description: "version name, id, or 'active'" }) });

  app.openapi(createRoute({
    method: "post", path: "/templates/{template}/versions", operationId: "templates.pushVersion", tags: ["templates"], security,
    summary: "Upload a new immutable version of a terraform template (creating the template on first push); its import runs as a job",
    request: { params: templateParam, body: { content: { "application/json": { schema: PushTemplateVersionRequest } }, required: true } },
    responses: { 201: json(z.object({ template: Template, version: TemplateVersion }), "The template and its new version (import pending)"), ...errorResponses },
  }), async (c) => {
    const { template } = await TemplateVersions.push(deps.database, c.get("actor"), { ...c.req.valid("json"), template: c.req.valid("param").template });
    const created = await TemplateVersions.list(db, template.id);
    return c.json({ template: Templates.toPublic(await Templates.get(db, template.id)), version: created[0]! }, 201);
  });

  app.openapi(createRoute({
    method: "get", path: "/templates/{template}/versions", operationId: "templates.listVersions", tags: ["templates"], security,
    request: { params: templateParam },
    responses: { 200: json(z.object({ versions: z.array(TemplateVersion) }), "Versions, newest first"), 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => c.json({ versions: await TemplateVersions.list(db, c.req.valid("param").template) }, 200));

  app.openapi(createRoute({
    method: "get", path: "/templates/{template}/versions/{version}", operationId: "templates.getVersion", tags: ["templates"], security,
    request: { params: versionParam },
    responses: { 200: json(TemplateVersion, "The version with what its import found"), 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => {
    const { template, version } = c.req.valid("param");
    return c.json((await TemplateVersions.find(db, template, version)).version, 200);
  });

  app.openapi(createRoute({
    method: "get", path: "/templates/{template}/versions/{version}/logs", operationId: "templates.versionLogs", tags: ["templates"], security,
    summary: "Import logs (Terraform's output); with follow=true a text/event-stream that ends when the import finishes",
    request: { params: versionParam, query: z.object({ after: z.coerce.number().int().min(0).optional(), follow: z.enum(["true", "false"]).optional() }) },
    responses: {
      200: { description: "Log lines", content: { "application/json": { schema: z.object({ logs: z.array(BuildLog), job_status: z.string() }) }, "text/event-stream": { schema: z.string() } } },
      ...errorResponses,
    },
  }), async (c) => {
    const { template, version } = c.req.valid("param");
    const found = await TemplateVersions.find(db, template, version);
    if (!found.row.jobId) return c.json({ logs: [], job_status: "succeeded" }, 200);
    const query = c.req.valid("query");
    return jobLogsResponse(c, deps.database, found.row.jobId, { after: query.after, follow: query.follow === "true" }) as never;
  });

  app.openapi(createRoute({
    method: "post", path: "/templates/{template}/versions/{version}/promote", operationId: "templates.promoteVersion", tags: ["templates"], security,
    summary: "Make a version the one new workspaces are built from",
    request: { params: versionParam },
    responses: { 200: json(TemplateVersion, "The now active version"), ...errorResponses },
  }), async (c) => {
    const { template, version } = c.req.valid("param");
    return c.json(await TemplateVersions.promote(db, c.get("actor"), template, version), 200);
  });

  return app;
}
