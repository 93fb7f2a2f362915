import { Hono } from "hono";
import { parseInput } from "../errors.ts";
import { editFiles, listDirectory, openRawFile, rawFileSize, readFile, writeFile, writeRawFile } from "../files/index.ts";
import { EditFilesRequest, ListFilesRequest, RawReadRequest, RawWriteRequest, ReadFileRequest, WriteFileRequest } from "../protocol.ts";
import { jsonBody, type DaemonEnv } from "./context.ts";

const rawHeaders = (size: number) => ({ "content-type": "application/octet-stream", "content-length": String(size) });

export function fileRoutes(root: string) {
  return new Hono<DaemonEnv>()
    .get("/read", async (c) => c.json(await readFile(root, parseInput(ReadFileRequest, c.req.query()))))
    .get("/raw", async (c) => {
      const request = parseInput(RawReadRequest, c.req.query());
      // Hono answers HEAD through GET routes and drops the body unread: an open file would stay open.
      if (c.req.method === "HEAD") return new Response(null, { headers: rawHeaders(rawFileSize(root, request).size) });
      const file = await openRawFile(root, request);
      return new Response(file.body, { headers: rawHeaders(file.size) });
    })
    .put("/raw", async (c) => c.json(await writeRawFile(root, parseInput(RawWriteRequest, c.req.query()), c.req.raw.body)))
    .post("/write", async (c) => c.json(await writeFile(root, parseInput(WriteFileRequest, await jsonBody(c)))))
    .post("/edit", async (c) => c.json(await editFiles(root, parseInput(EditFilesRequest, await jsonBody(c)))))
    .get("/list", async (c) => c.json(await listDirectory(root, parseInput(ListFilesRequest, c.req.query()))));
}
