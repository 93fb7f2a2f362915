import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import ssh2 from "ssh2";

export const HOST_KEY_FILE = "ssh_host_ed25519_key";

/**
 * The workspace's SSH host key: read from `stateDir`, or generated once (ed25519, OpenSSH
 * format, mode 0600) so clients see the same key across daemon restarts.
 */
export async function loadOrCreateHostKey(stateDir: string): Promise<Buffer> {
  const file = join(stateDir, HOST_KEY_FILE);
  const existing = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (existing && isUsable(existing)) return existing;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const generated = generateHostKey();
  try {
    // A file that is there but unusable (see generateHostKey) is replaced; otherwise the first writer wins.
    await writeFile(file, generated, { mode: 0o600, flag: existing ? "w" : "wx" });
    return generated;
  } catch (error) {
    // Another daemon of this workspace won the race: use its key.
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return readFile(file);
    throw error;
  }
}

/**
 * An ed25519 key in OpenSSH format. ssh2's generator drops a leading zero byte of the public
 * key (about 1 key in 300), writing a key that nothing can parse, so each one is checked.
 */
export function generateHostKey(): Buffer {
  for (;;) {
    const candidate = Buffer.from(ssh2.utils.generateKeyPairSync("ed25519").private);
    if (isUsable(candidate)) return candidate;
  }
}

function isUsable(key: Buffer): boolean {
  return !(ssh2.utils.parseKey(key) instanceof Error);
}

/** The public half in `authorized_keys`/`known_hosts` form, for display. */
export function publicKeyLine(privateKey: Buffer): string {
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0]! : parsed;
  return `${key.type} ${key.getPublicSSH().toString("base64")}`;
}
