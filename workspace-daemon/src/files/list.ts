import { lstat, readdir } from "node:fs/promises";
import type { Dirent, Stats } from "node:fs";
import { join } from "node:path";
import { fileSystemError, InvalidRequestError } from "../errors.ts";
import type { DirectoryEntry, EntryType, ListFilesRequest, ListFilesResponse } from "../protocol.ts";
import { resolvePath } from "./paths.ts";

/** Lists a directory's entries, sorted by name (code point order, independent of locale). */
export async function listDirectory(root: string, request: ListFilesRequest): Promise<ListFilesResponse> {
  const path = resolvePath(root, request.path);
  let dirents: Dirent[];
  try {
    dirents = await readdir(path, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOTDIR") {
      throw new InvalidRequestError("not_directory", `path is not a directory: ${path}`, { path });
    }
    throw fileSystemError(error, path);
  }

  const entries = await Promise.all(
    dirents.map(async (dirent): Promise<DirectoryEntry | undefined> => {
      let stats: Stats;
      try {
        stats = await lstat(join(path, dirent.name));
      } catch {
        return undefined; // removed between readdir and lstat
      }
      return {
        name: dirent.name,
        type: entryType(stats),
        size: stats.size,
        mode: formatMode(stats.mode),
        modified_at: stats.mtime.toISOString(),
      };
    }),
  );

  return {
    path,
    entries: entries
      .filter((entry): entry is DirectoryEntry => entry !== undefined)
      .sort((left, right) => (left.name < right.name ? -1 : left.name > right.name ? 1 : 0)),
  };
}

function entryType(stats: Stats): EntryType {
  if (stats.isFile()) return "file";
  if (stats.isDirectory()) return "directory";
  if (stats.isSymbolicLink()) return "symlink";
  return "other";
}

export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}
