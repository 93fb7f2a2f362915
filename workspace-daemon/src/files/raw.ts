import { closeSync, createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type { RawReadRequest, RawWriteRequest, RawWriteResponse } from "../protocol.ts";
import { writeAll, stageFile, commitStaged } from "./atomic.ts";
import { resolvePath } from "./paths.ts";
import { openRegularFile } from "./read.ts";

const STREAM_CHUNK_BYTES = 256 * 1024;

export interface RawFile {
  path: string;
  size: number;
  body: ReadableStream<Uint8Array>;
}

/** Opens a file of any size as a byte stream; the descriptor closes when the stream ends or is cancelled. */
export async function openRawFile(root: string, request: RawReadRequest): Promise<RawFile> {
  const path = resolvePath(root, request.path);
  const { fd, stats } = openRegularFile(path);
  if (stats.size === 0) {
    closeSync(fd);
    return { path, size: 0, body: new ReadableStream({ start: (controller) => controller.close() }) };
  }
  // Stop at the size sent as content-length even if the file grows meanwhile.
  const stream = createReadStream("", { fd, start: 0, end: stats.size - 1, highWaterMark: STREAM_CHUNK_BYTES, autoClose: true });
  return { path, size: stats.size, body: Readable.toWeb(stream) as ReadableStream<Uint8Array> };
}

/** Streams bytes into a file atomically, creating parent directories. */
export async function writeRawFile(
  root: string,
  request: RawWriteRequest,
  body: ReadableStream<Uint8Array> | null,
): Promise<RawWriteResponse> {
  const path = resolvePath(root, request.path);
  const mode = request.mode === undefined ? undefined : Number.parseInt(request.mode, 8);
  const staged = await stageFile(
    path,
    async (handle) => {
      if (body === null) return 0;
      let written = 0;
      for await (const chunk of body) written += await writeAll(handle, chunk);
      return written;
    },
    { mode },
  );
  await commitStaged(staged);
  return { path, bytes_written: staged.bytesWritten };
}
