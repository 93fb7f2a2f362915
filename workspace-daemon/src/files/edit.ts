import { readFile as readFileBytes } from "node:fs/promises";
import { createTwoFilesPatch, FILE_HEADERS_ONLY } from "diff";
import { DaemonError, fileSystemError, InvalidRequestError } from "../errors.ts";
import { LIMITS, type EditFilesRequest, type EditFilesResponse, type FileEdit } from "../protocol.ts";
import { commitStaged, discardStaged, stageFile, writeAll, type StagedFile } from "./atomic.ts";
import { resolvePath } from "./paths.ts";

const DIFF_CONTEXT_LINES = 3;
/** Myers diff is quadratic in the worst case; give up rather than stall the event loop. */
const DIFF_TIMEOUT_MS = 500;

interface FileState {
  path: string;
  original: string;
  current: string;
  replacements: number;
}

/**
 * Applies a batch of search-and-replace edits. Every edit is checked against the
 * content left by the edits before it, and nothing is written unless all succeed.
 */
export async function editFiles(root: string, request: EditFilesRequest): Promise<EditFilesResponse> {
  const paths = request.edits.map((edit) => resolvePath(root, edit.path));
  const files = await loadFiles(paths);

  request.edits.forEach((edit, index) => {
    const path = paths[index] as string;
    applyEdit(files.get(path) as FileState, edit, index);
  });

  const staged: StagedFile[] = [];
  try {
    for (const file of files.values()) {
      staged.push(await stageFile(file.path, (handle) => writeAll(handle, file.current)));
    }
  } catch (error) {
    await Promise.all(staged.map(discardStaged));
    throw error;
  }
  // Renames within one directory are the only step left that could fail half-way.
  for (const file of staged) await commitStaged(file);

  return {
    files: [...files.values()].map((file) => ({
      path: file.path,
      diff: unifiedDiff(file),
      replacements: file.replacements,
    })),
  };
}

/** Loads each distinct file once, in first-mention order; a failure names the first edit that needs it. */
async function loadFiles(paths: string[]): Promise<Map<string, FileState>> {
  const distinct = [...new Set(paths)];
  const results = await Promise.allSettled(distinct.map(loadText));
  const files = new Map<string, FileState>();
  for (const [position, result] of results.entries()) {
    const path = distinct[position] as string;
    if (result.status === "rejected") {
      const error = result.reason;
      if (error instanceof DaemonError) error.details = { ...error.details, edit_index: paths.indexOf(path), path };
      throw error;
    }
    files.set(path, { path, original: result.value, current: result.value, replacements: 0 });
  }
  return files;
}

async function loadText(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFileBytes(path);
  } catch (error) {
    throw fileSystemError(error, path);
  }
  if (bytes.subarray(0, LIMITS.binarySniffBytes).includes(0)) {
    throw new InvalidRequestError("binary_file", `file looks binary (contains NUL bytes): ${path}`, { path });
  }
  return bytes.toString("utf8");
}

function applyEdit(file: FileState, edit: FileEdit, index: number): void {
  const matchCount = countOccurrences(file.current, edit.old_text);
  if (matchCount === 0) {
    throw new InvalidRequestError("no_match", `edit ${index}: old_text not found in ${file.path}`, {
      edit_index: index,
      path: file.path,
      match_count: 0,
    });
  }
  if (edit.replace_all === true) {
    file.current = file.current.split(edit.old_text).join(edit.new_text);
    file.replacements += matchCount;
    return;
  }
  if (matchCount > 1) {
    throw new InvalidRequestError(
      "multiple_matches",
      `edit ${index}: old_text occurs ${matchCount} times in ${file.path}; add surrounding context to make it unique, or set replace_all`,
      { edit_index: index, path: file.path, match_count: matchCount },
    );
  }
  // Slicing, not String.replace: new_text may contain `$&`-style patterns.
  const at = file.current.indexOf(edit.old_text);
  file.current = file.current.slice(0, at) + edit.new_text + file.current.slice(at + edit.old_text.length);
  file.replacements += 1;
}

/** Non-overlapping occurrences, the same ones a left-to-right replace would touch. */
export function countOccurrences(text: string, search: string): number {
  let count = 0;
  let from = text.indexOf(search);
  while (from !== -1) {
    count += 1;
    from = text.indexOf(search, from + search.length);
  }
  return count;
}

function unifiedDiff(file: FileState): string {
  const patch = createTwoFilesPatch(file.path, file.path, file.original, file.current, undefined, undefined, {
    context: DIFF_CONTEXT_LINES,
    headerOptions: FILE_HEADERS_ONLY,
    timeout: DIFF_TIMEOUT_MS,
  });
  return patch ?? `(diff of ${file.path} too large to compute)\n`;
}
