import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** Where `kiln login` keeps the deployment URL and session token: KILN_CONFIG_DIR, else the platform's config dir. */
export function configDir(environment: NodeJS.ProcessEnv = process.env): string {
  if (environment.KILN_CONFIG_DIR) return environment.KILN_CONFIG_DIR;
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "kiln");
  if (process.platform === "win32") return path.join(environment.APPDATA ?? path.join(os.homedir(), "AppData", "Roaming"), "kiln");
  return path.join(environment.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "kiln");
}

export interface Credentials {
  url: string;
  token: string;
}

export async function readCredentials(): Promise<Credentials | null> {
  if (process.env.KILN_URL && process.env.KILN_TOKEN) return { url: process.env.KILN_URL, token: process.env.KILN_TOKEN };
  try {
    const text = await readFile(path.join(configDir(), "session.json"), "utf8");
    const parsed = JSON.parse(text) as Partial<Credentials>;
    return parsed.url && parsed.token ? { url: parsed.url, token: parsed.token } : null;
  } catch {
    return null;
  }
}

export async function writeCredentials(credentials: Credentials): Promise<string> {
  const directory = configDir();
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const file = path.join(directory, "session.json");
  await writeFile(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return file;
}

export async function clearCredentials(): Promise<void> {
  await rm(path.join(configDir(), "session.json"), { force: true });
}
