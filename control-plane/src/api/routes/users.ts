import { createRoute, z } from "@hono/zod-openapi";
import * as Users from "../../users/index.ts";
import { createRouter } from "../app.ts";
import type { AppDeps } from "../context.ts";
import { CreateUserRequest, errorResponses, json, UpdateUserRequest, User } from "../schemas.ts";

export function userRoutes(deps: AppDeps) {
  const app = createRouter();
  const { db } = deps.database;

  app.openapi(createRoute({
    method: "get", path: "/users", operationId: "users.list", tags: ["users"], security: [{ bearer: [] }],
    responses: { 200: json(z.object({ users: z.array(User) }), "All users (admins only)"), 401: errorResponses[401], 403: errorResponses[403] },
  }), async (c) => c.json({ users: (await Users.list(db, c.get("actor"))).map(Users.toPublic) }, 200));

  app.openapi(createRoute({
    method: "post", path: "/users", operationId: "users.create", tags: ["users"], security: [{ bearer: [] }],
    request: { body: { content: { "application/json": { schema: CreateUserRequest } }, required: true } },
    responses: { 201: json(User, "The new user"), ...errorResponses },
  }), async (c) => c.json(Users.toPublic(await Users.create(db, c.get("actor"), c.req.valid("json"))), 201));

  app.openapi(createRoute({
    method: "patch", path: "/users/{id}", operationId: "users.update", tags: ["users"], security: [{ bearer: [] }],
    request: { params: z.object({ id: z.uuid() }), body: { content: { "application/json": { schema: UpdateUserRequest } }, required: true } },
    responses: { 200: json(User, "The updated user"), ...errorResponses },
  }), async (c) => {
    const updated = await Users.update(db, c.get("actor"), c.req.valid("param").id, c.req.valid("json"));
    // A suspended user's own devices leave the tailnet with the rule that admitted them.
    if (updated.suspended) await deps.tailnet?.revokeOwner(updated.id);
    return c.json(Users.toPublic(updated), 200);
  });

  return app;
}
