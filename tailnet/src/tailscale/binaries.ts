import { accessSync, constants } from "node:fs";
import path from "node:path";

/** Where the toolchain script (tailnet/scripts/toolchain.mjs) puts the pinned builds. */
export const TOOLCHAIN_BIN_DIR = path.resolve(import.meta.dirname, "../../../.tools/bin");

/**
 * Finds each named executable in `directories` (first), then on PATH, then in the toolchain's bin dir.
 * Returns the paths found and the names that were not.
 */
export function findBinaries<Name extends string>(names: readonly Name[], directories: string[] = []): { found: Partial<Record<Name, string>>; missing: Name[] } {
  const search = [...directories, ...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean), TOOLCHAIN_BIN_DIR];
  const found: Partial<Record<Name, string>> = {};
  const missing: Name[] = [];
  for (const name of names) {
    const hit = search.map((directory) => path.join(directory, name)).find(isExecutable);
    if (hit) found[name] = hit;
    else missing.push(name);
  }
  return { found, missing };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
