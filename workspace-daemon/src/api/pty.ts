import { Hono } from "hono";
import { parseInput } from "../errors.ts";
import { CreatePtyRequest, ResizePtyRequest, type ListPtyResponse } from "../protocol.ts";
import type { PtyManager } from "../pty/index.ts";
import { jsonBody, type DaemonEnv } from "./context.ts";

/** Terminal sessions; their byte stream (`POST /v1/pty/:id/attach`) is served by byte-streams.ts. */
export function ptyRoutes(pty: PtyManager) {
  return new Hono<DaemonEnv>()
    .post("/", async (c) => {
      const request = parseInput(CreatePtyRequest, await jsonBody(c));
      const session = await pty.create(request);
      return c.json(session.info(), 201);
    })
    .get("/", (c) => {
      const response: ListPtyResponse = { sessions: pty.list().map((session) => session.info()) };
      return c.json(response);
    })
    .get("/:id", (c) => c.json(pty.get(c.req.param("id")).info()))
    .post("/:id/resize", async (c) => {
      const { cols, rows } = parseInput(ResizePtyRequest, await jsonBody(c));
      const session = pty.get(c.req.param("id"));
      session.resize(cols, rows);
      return c.json(session.info());
    })
    .delete("/:id", (c) => c.json(pty.kill(c.req.param("id")).info()));
}
