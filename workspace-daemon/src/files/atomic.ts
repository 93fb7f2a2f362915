import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, realpath, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileSystemError, InvalidRequestError } from "../errors.ts";

/** A file written next to its target, waiting to be renamed over it. */
export interface StagedFile {
  /** The file that will be replaced; a symlink's target, so the link survives. */
  target: string;
  tempPath: string;
  created: boolean;
  bytesWritten: number;
}

export interface StageOptions {
  /** Permission bits; default keeps an existing file's mode, or the umask default for a new file. */
  mode?: number;
}

/**
 * Writes content to a temp file in the target's directory. Nothing visible changes
 * until `commitStaged`; `discardStaged` removes the temp file.
 */
export async function stageFile(
  path: string,
  writeContent: (handle: FileHandle) => Promise<number>,
  options: StageOptions = {},
): Promise<StagedFile> {
  const { target, existingMode } = await resolveTarget(path);
  const created = existingMode === undefined;
  if (created) {
    try {
      await mkdir(dirname(target), { recursive: true });
    } catch (error) {
      throw fileSystemError(error, path);
    }
  }

  const tempPath = join(dirname(target), `.${basename(target)}.kiln-${randomBytes(6).toString("hex")}.tmp`);
  const mode = options.mode ?? existingMode;
  let handle: FileHandle;
  try {
    handle = await open(tempPath, "wx", mode ?? 0o666);
  } catch (error) {
    throw fileSystemError(error, path);
  }
  try {
    // open() applies the umask; an explicit or inherited mode must be exact.
    if (mode !== undefined) await handle.chmod(mode);
    const bytesWritten = await writeContent(handle);
    await handle.close();
    return { target, tempPath, created, bytesWritten };
  } catch (error) {
    await handle.close().catch(() => {});
    await unlink(tempPath).catch(() => {});
    throw error;
  }
}

export async function commitStaged(staged: StagedFile): Promise<void> {
  try {
    await rename(staged.tempPath, staged.target);
  } catch (error) {
    await discardStaged(staged);
    throw fileSystemError(error, staged.target);
  }
}

export async function discardStaged(staged: StagedFile): Promise<void> {
  await unlink(staged.tempPath).catch(() => {});
}

/** Writes a whole file atomically: temp file in the same directory, then rename. */
export async function writeAtomic(path: string, content: string | Uint8Array, options: StageOptions = {}): Promise<StagedFile> {
  const staged = await stageFile(path, (handle) => writeAll(handle, content), options);
  await commitStaged(staged);
  return staged;
}

export async function writeAll(handle: FileHandle, content: string | Uint8Array): Promise<number> {
  const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content;
  let written = 0;
  while (written < bytes.length) {
    const result = await handle.write(bytes, written, bytes.length - written);
    written += result.bytesWritten;
  }
  return written;
}

async function resolveTarget(path: string): Promise<{ target: string; existingMode: number | undefined }> {
  try {
    let stats = await lstat(path);
    let target = path;
    if (stats.isSymbolicLink()) {
      target = await realpath(path);
      stats = await stat(target);
    }
    if (stats.isDirectory()) throw new InvalidRequestError("is_directory", `path is a directory: ${path}`, { path });
    return { target, existingMode: stats.mode & 0o7777 };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A missing file (or a dangling symlink) is created.
    if (code === "ENOENT") return { target: path, existingMode: undefined };
    throw fileSystemError(error, path);
  }
}
