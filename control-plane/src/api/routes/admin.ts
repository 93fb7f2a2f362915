import { createRoute, z } from "@hono/zod-openapi";
import { Models, Providers, Settings } from "../../admin/index.ts";
import { createRouter } from "../app.ts";
import type { AppDeps } from "../context.ts";
import { errorResponses, json } from "../schemas.ts";

const Provider = Providers.Provider.openapi("LlmProvider");
const CreateProviderRequest = Providers.CreateProviderInput.openapi("CreateLlmProviderRequest");
const UpdateProviderRequest = Providers.UpdateProviderInput.openapi("UpdateLlmProviderRequest");
const Model = Models.Model.openapi("LlmModel");
const CreateModelRequest = Models.CreateModelInput.openapi("CreateLlmModelRequest");
const UpdateModelRequest = Models.UpdateModelInput.openapi("UpdateLlmModelRequest");
const SystemPrompt = Settings.SystemPrompt.openapi("SystemPrompt");
const SetSystemPromptRequest = Settings.SetSystemPromptInput.openapi("SetSystemPromptRequest");
const ToolPolicy = z.object({
  policy: Settings.ToolPolicy.describe("tool name (or '*' for every other tool) to allow, ask or deny; tools not covered are allowed"),
  tools: z.array(z.string()).describe("the tool names a policy may use; empty when the server does not list them"),
}).openapi("ToolPolicy");
const SetToolPolicyRequest = z.strictObject({ policy: Settings.ToolPolicy }).openapi("SetToolPolicyRequest");
const IdParam = z.object({ id: z.uuid() });

const admin = { tags: ["admin"], security: [{ bearer: [] }] };
const adminReadResponses = { 401: errorResponses[401], 403: errorResponses[403] } as const;

/**
 * LLM providers and models, the system prompt and the tool policy: admin-only, except `GET /models`.
 * `toolNames` lets the tool policy refuse names that are not tools.
 */
export function adminRoutes(deps: Pick<AppDeps, "database" | "secrets">, options: { toolNames?: readonly string[] } = {}) {
  const app = createRouter();
  const { db } = deps.database;
  const { secrets } = deps;
  const knownTools = options.toolNames;

  app.openapi(createRoute({
    method: "get", path: "/admin/providers", operationId: "providers.list", ...admin,
    responses: { 200: json(z.object({ providers: z.array(Provider) }), "LLM providers; keys are never returned"), ...adminReadResponses },
  }), async (c) => c.json({ providers: (await Providers.list(db, c.get("actor"))).map(Providers.toPublic) }, 200));

  app.openapi(createRoute({
    method: "post", path: "/admin/providers", operationId: "providers.create", ...admin,
    request: { body: { content: { "application/json": { schema: CreateProviderRequest } }, required: true } },
    responses: { 201: json(Provider, "The new provider"), ...errorResponses },
  }), async (c) => c.json(Providers.toPublic(await Providers.create(db, secrets, c.get("actor"), c.req.valid("json"))), 201));

  app.openapi(createRoute({
    method: "patch", path: "/admin/providers/{id}", operationId: "providers.update", ...admin,
    request: { params: IdParam, body: { content: { "application/json": { schema: UpdateProviderRequest } }, required: true } },
    responses: { 200: json(Provider, "The updated provider"), ...errorResponses },
  }), async (c) => c.json(Providers.toPublic(await Providers.update(db, secrets, c.get("actor"), c.req.valid("param").id, c.req.valid("json"))), 200));

  app.openapi(createRoute({
    method: "delete", path: "/admin/providers/{id}", operationId: "providers.delete", ...admin,
    summary: "Delete a provider and its models",
    request: { params: IdParam },
    responses: { 204: { description: "Deleted" }, ...errorResponses },
  }), async (c) => {
    await Providers.remove(db, c.get("actor"), c.req.valid("param").id);
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "get", path: "/admin/models", operationId: "models.list", ...admin,
    responses: { 200: json(z.object({ models: z.array(Model) }), "Every model, enabled or not; the default first"), ...adminReadResponses },
  }), async (c) => c.json({ models: await Models.list(db, c.get("actor")) }, 200));

  app.openapi(createRoute({
    method: "post", path: "/admin/models", operationId: "models.create", ...admin,
    request: { body: { content: { "application/json": { schema: CreateModelRequest } }, required: true } },
    responses: { 201: json(Model, "The new model"), ...errorResponses },
  }), async (c) => c.json(await Models.create(db, c.get("actor"), c.req.valid("json")), 201));

  app.openapi(createRoute({
    method: "patch", path: "/admin/models/{id}", operationId: "models.update", ...admin,
    request: { params: IdParam, body: { content: { "application/json": { schema: UpdateModelRequest } }, required: true } },
    responses: { 200: json(Model, "The updated model"), ...errorResponses },
  }), async (c) => c.json(await Models.update(db, c.get("actor"), c.req.valid("param").id, c.req.valid("json")), 200));

  app.openapi(createRoute({
    method: "delete", path: "/admin/models/{id}", operationId: "models.delete", ...admin,
    request: { params: IdParam },
    responses: { 204: { description: "Deleted" }, ...errorResponses },
  }), async (c) => {
    await Models.remove(db, c.get("actor"), c.req.valid("param").id);
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "get", path: "/models", operationId: "models.listEnabled", tags: ["models"], security: [{ bearer: [] }],
    summary: "The models chats can use",
    responses: { 200: json(z.object({ models: z.array(Model) }), "Enabled models on enabled providers; the default first"), 401: errorResponses[401] },
  }), async (c) => c.json({ models: await Models.listEnabled(db) }, 200));

  app.openapi(createRoute({
    method: "get", path: "/admin/system-prompt", operationId: "systemPrompt.get", ...admin,
    responses: { 200: json(SystemPrompt, "The system prompt new turns use"), ...adminReadResponses },
  }), async (c) => c.json(await Settings.readSystemPrompt(db, c.get("actor")), 200));

  app.openapi(createRoute({
    method: "put", path: "/admin/system-prompt", operationId: "systemPrompt.set", ...admin,
    request: { body: { content: { "application/json": { schema: SetSystemPromptRequest } }, required: true } },
    responses: { 200: json(SystemPrompt, "The system prompt now in use"), ...errorResponses },
  }), async (c) => c.json(await Settings.setSystemPrompt(db, c.get("actor"), c.req.valid("json").system_prompt), 200));

  app.openapi(createRoute({
    method: "get", path: "/admin/tool-policy", operationId: "toolPolicy.get", ...admin,
    responses: { 200: json(ToolPolicy, "Which tools run without asking"), ...adminReadResponses },
  }), async (c) => c.json({ policy: await Settings.readToolPolicy(db, c.get("actor")), tools: [...(knownTools ?? [])] }, 200));

  app.openapi(createRoute({
    method: "put", path: "/admin/tool-policy", operationId: "toolPolicy.set", ...admin,
    summary: "Replace the tool policy",
    request: { body: { content: { "application/json": { schema: SetToolPolicyRequest } }, required: true } },
    responses: { 200: json(ToolPolicy, "The policy now in force"), ...errorResponses },
  }), async (c) => c.json({ policy: await Settings.setToolPolicy(db, c.get("actor"), c.req.valid("json").policy, { knownTools }), tools: [...(knownTools ?? [])] }, 200));

  return app;
}
