import type { DatabaseHandle } from "../db/index.ts";
import { createLogger } from "../logger.ts";
import { version } from "../version.ts";
import { createApp } from "./app.ts";

/** The OpenAPI document, built from the route definitions alone (no database or tunnel is touched). */
export function openApiDocument(): unknown {
  const unused = new Proxy({}, { get: () => { throw new Error("openApiDocument must not touch dependencies"); } });
  const app = createApp({
    database: { kind: "postgres", db: unused } as unknown as DatabaseHandle,
    log: createLogger({ level: "silent" }),
    tunnel: unused as never,
    version,
    secrets: unused as never,
    chats: { bus: unused as never, resolveModelId: unused as never, compactNow: unused as never },
  });
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "Kiln API", version: "1", description: "Control plane for AI coding agents and remote development workspaces." },
  });
}
