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

export interface RawFileDescriptor {
  path: string;
  /** Open for reading; whoever opened it closes it. */
  fd: number;
  /** At opening: what a raw read sends, even if the file changes meanwhile. */
  size: number;
}

/** Opens the regular file a raw read names; a bad path, a directory or a special file fails as a DaemonError. */
export function openRawFileDescriptor(root: string, request: RawReadRequest): RawFileDescriptor {
  const path = resolvePath(root, request.path);
  const { fd, stats } = openRegularFile(path);
  return { path, fd, size: stats.size };
}

/** What a raw read of the file would send, without reading it (for HEAD). */
export function rawFileSize(root: string, request: RawReadRequest): { path: string; size: number } {
  const { path, fd, size } = openRawFileDescriptor(root, request);
  closeSync(fd);
  return { path, size };
}

/** Opens a file of any size as a byte stream; the descriptor closes when the stream ends or is cancelled. */
export async function openRawFile(root: string, request: RawReadRequest): Promise<RawFile> {
  const file = openRawFileDescriptor(root, request);
  if (file.size === 0) {
    closeSync(file.fd);
    return { path: file.path, size: 0, body: new ReadableStream({ start: (controller) => controller.close() }) };
  }
  return { path: file.path, size: file.size, body: fileBody(file) };
}

/** Where sendRawFile writes: a node Writable's write and end (an HTTP/2 stream, say). */
export interface ChunkSink {
  /** `written` runs once the sink is done with `chunk`'s memory, or has failed. */
  write(chunk: Uint8Array, written: (error?: Error | null) => void): unknown;
  end(): unknown;
  destroy(error?: Error): unknown;
}

/** Buffers in flight per sendRawFile: enough to keep reading while earlier chunks are written. */
const SEND_BUFFERS = 4;

/**
 * Writes `file.size` bytes of `file` to `sink` and ends it, through a few buffers that are read
 * into again once the sink has written them: a file of any size allocates ~1 MiB, where a fresh
 * buffer per chunk costs the garbage collector (and CPU) per byte. Fails the sink if the file
 * shrinks under it; stops at `size` if it grows. Closes the descriptor when done, on failure, or
 * after `stop()` (once no read is in flight).
 */
export function sendRawFile(file: RawFileDescriptor, sink: ChunkSink): { stop(): void } {
  const free = Array.from({ length: Math.min(SEND_BUFFERS, Math.ceil(file.size / STREAM_CHUNK_BYTES)) }, () => Buffer.allocUnsafeSlow(STREAM_CHUNK_BYTES));
  let position = 0;
  let reading = false;
  let stopped = false;
  let closed = false;
  const closeFile = () => {
    if (closed) return;
    closed = true;
    close(file.fd, () => {});
  };
  const stop = () => {
    stopped = true;
    if (!reading) closeFile();
  };
  const fail = (error: Error) => {
    stop();
    sink.destroy(error);
  };
  const pump = () => {
    if (reading || stopped || position === file.size) return;
    const buffer = free.pop();
    if (buffer === undefined) return;
    reading = true;
    read(file.fd, buffer, 0, Math.min(buffer.length, file.size - position), position, (error, bytesRead) => {
      reading = false;
      if (stopped) return closeFile();
      if (error) return fail(error);
      if (bytesRead === 0) return fail(shrank(file, position));
      position += bytesRead;
      sink.write(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead), (writeError) => {
        if (writeError) return stop();
        free.push(buffer);
        pump();
      });
      if (position === file.size) {
        closeFile();
        sink.end();
      } else {
        pump();
      }
    });
  };
  if (file.size === 0) {
    closeFile();
    sink.end();
  } else {
    pump();
  }
  return { stop };
}

const readInto = promisify(read);

/** A raw read that found the file shorter than the length it announced. */
function shrank(file: RawFileDescriptor, position: number): Error {
  return new Error(`${file.path} shrank to ${position} bytes while being read (expected ${file.size})`);
}

/**
 * Exactly `file.size` bytes of `file` as a web stream, each chunk read into a buffer of its
 * own and handed on as it is (`Readable.toWeb` over a file stream copies every chunk once more).
 * Stops at `size`, the content-length already sent, even if the file grows meanwhile, and fails
 * if it shrinks. The descriptor closes at the end, on an error, or on cancel (once no read is in flight).
 */
function fileBody(file: RawFileDescriptor): ReadableStream<Uint8Array> {
  const { fd, size } = file;
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
        throw shrank(file, position);
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
