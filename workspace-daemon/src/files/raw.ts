import { close, closeSync, read } from "node:fs";
import { promisify } from "node:util";
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
  return { path, size: stats.size, body: fileBody(path, fd, stats.size) };
}

const readInto = promisify(read);

/**
 * Exactly `size` bytes of the open file `fd` as a web stream, each chunk read into a buffer of its
 * own and handed on as it is (`Readable.toWeb` over a file stream copies every chunk once more).
 * Stops at `size`, the content-length already sent, even if the file grows meanwhile, and fails
 * if it shrinks. The descriptor closes at the end, on an error, or on cancel (once no read is in flight).
 */
function fileBody(path: string, fd: number, size: number): ReadableStream<Uint8Array> {
  let position = 0;
  let reading: Promise<unknown> = Promise.resolve();
  let closed = false;
  let cancelled = false;
  const closeFile = () => {
    if (closed) return;
    closed = true;
    close(fd, () => {});
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const chunk = Buffer.allocUnsafeSlow(Math.min(STREAM_CHUNK_BYTES, size - position));
      const pending = readInto(fd, chunk, 0, chunk.length, position);
      reading = pending.catch(() => {});
      let bytesRead: number;
      try {
        ({ bytesRead } = await pending);
      } catch (error) {
        closeFile();
        throw error;
      }
      if (cancelled) return;
      if (bytesRead === 0) {
        closeFile();
        throw new Error(`${path} shrank to ${position} bytes while being read (expected ${size})`);
      }
      position += bytesRead;
      controller.enqueue(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
      if (position === size) {
        closeFile();
        controller.close();
      }
    },
    async cancel() {
      cancelled = true;
      await reading;
      closeFile();
    },
  });
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
