import { homedir } from "node:os";
import { resolve } from "node:path";

/** Resolves a client path: relative to `root`, absolute as given, `~` as the user's home. */
export function resolvePath(root: string, path: string): string {
  if (path === "~") return homedir();
  if (path.startsWith("~/")) return resolve(homedir(), path.slice(2));
  return resolve(root, path);
}
