import type { WriteFileRequest, WriteFileResponse } from "../protocol.ts";
import { writeAtomic } from "./atomic.ts";
import { resolvePath } from "./paths.ts";

/** Replaces a file's content atomically, keeping its mode and creating parent directories. */
export async function writeFile(root: string, request: WriteFileRequest): Promise<WriteFileResponse> {
  const path = resolvePath(root, request.path);
  const staged = await writeAtomic(path, request.content);
  return { path, bytes_written: staged.bytesWritten, created: staged.created };
}
