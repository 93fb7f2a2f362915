import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { z } from "zod";

/** One file of a template version. `content` is base64 so binary files survive. */
export const TemplateFile = z.object({
  path: z.string().min(1).max(1024),
  mode: z.number().int().min(0).max(0o777).default(0o644),
  content: z.string(),
});
export type TemplateFile = z.infer<typeof TemplateFile>;

export const LIMITS = {
  /** Total decoded size of a version's files. */
  maxBytes: 10 * 1024 * 1024,
  maxFiles: 1000,
};

/**
 * Never uploaded: Terraform's working data, state, VCS metadata, and the dependency lock file — its
 * checksums are of the registry's provider packages, which Kiln's mirror (built from source) never matches.
 */
const IGNORED = [/^\.terraform(\/|$)/, /^\.terraform\.lock\.hcl$/, /(^|\/)\.git(\/|$)/, /\.tfstate(\.backup)?$/, /(^|\/)terraform\.tfstate\.d(\/|$)/, /(^|\/)\.DS_Store$/];

/** Why a file path is not acceptable inside a template (absolute, `..`, ignored), or null. */
export function pathProblem(filePath: string): string | null {
  if (filePath.startsWith("/") || filePath.includes("\\") || filePath.includes("\0")) return "must be a relative path with forward slashes";
  const normalized = path.posix.normalize(filePath);
  if (normalized !== filePath || normalized.split("/").includes("..") || normalized === ".") return "must be normalized and stay inside the template";
  return null;
}

export function isIgnored(filePath: string): boolean {
  return IGNORED.some((pattern) => pattern.test(filePath));
}

/** Reads a template directory from disk, skipping Terraform's working data and state. */
export async function readTemplateDirectory(directory: string): Promise<TemplateFile[]> {
  const files: TemplateFile[] = [];
  let total = 0;
  const walk = async (relative: string) => {
    for (const entry of await readdir(path.join(directory, relative), { withFileTypes: true })) {
      const child = relative ? `${relative}/${entry.name}` : entry.name;
      if (isIgnored(child)) continue;
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) {
        const absolute = path.join(directory, child);
        const [content, info] = await Promise.all([readFile(absolute), stat(absolute)]);
        total += content.length;
        if (total > LIMITS.maxBytes) throw new Error(`template files exceed ${LIMITS.maxBytes / 1024 / 1024} MiB`);
        files.push({ path: child, mode: info.mode & 0o777, content: content.toString("base64") });
      }
    }
  };
  await walk("");
  files.sort((a, b) => a.path.localeCompare(b.path));
  return files;
}

/** Writes a version's files into `directory`. Paths were checked when the version was created; checked again here. */
export async function writeTemplateFiles(directory: string, files: TemplateFile[]): Promise<void> {
  await mkdir(directory, { recursive: true });
  for (const file of files) {
    const problem = pathProblem(file.path);
    if (problem) throw new Error(`template file ${JSON.stringify(file.path)}: ${problem}`);
    const target = path.join(directory, file.path);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, Buffer.from(file.content, "base64"));
    await chmod(target, file.mode & 0o777);
  }
}

export function packFiles(files: TemplateFile[]): { archive: Buffer; hash: string } {
  const sorted = [...files].sort((a, b) => a.path.localeCompare(b.path));
  const json = JSON.stringify(sorted.map((file) => ({ path: file.path, mode: file.mode, content: file.content })));
  return { archive: gzipSync(json), hash: createHash("sha256").update(json).digest("hex") };
}

export function unpackFiles(archive: Buffer): TemplateFile[] {
  return z.array(TemplateFile).parse(JSON.parse(gunzipSync(archive).toString("utf8")));
}
