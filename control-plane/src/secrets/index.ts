import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/** Seals secrets at rest (provider keys, SSH keys) with AES-256-GCM under the server key. */
export interface SecretBox {
  seal(plaintext: string): string;
  open(sealed: string): string;
}

const VERSION = "v1";

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error("the server key must be 32 bytes");
  return {
    seal(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return [VERSION, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ciphertext.toString("base64url")].join(":");
    },
    open(sealed) {
      const [version, iv, tag, ciphertext] = sealed.split(":");
      if (version !== VERSION || !iv || !tag || ciphertext === undefined) throw new Error("sealed secret has an unknown format");
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
      decipher.setAuthTag(Buffer.from(tag, "base64url"));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()]).toString("utf8");
    },
  };
}

/**
 * The server key: KILN_SECRET_KEY (64 hex chars or base64 of 32 bytes; required when several replicas share a
 * database), else <dataDir>/secret.key, generated with mode 0600 on first start.
 */
export async function loadServerKey(options: { dataDir: string; configured?: string }): Promise<Buffer> {
  if (options.configured) {
    const key = /^[0-9a-f]{64}$/i.test(options.configured) ? Buffer.from(options.configured, "hex") : Buffer.from(options.configured, "base64");
    if (key.length !== 32) throw new Error("KILN_SECRET_KEY must be 32 bytes, as 64 hex characters or base64");
    return key;
  }
  const file = path.join(options.dataDir, "secret.key");
  try {
    return Buffer.from((await readFile(file, "utf8")).trim(), "hex");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await mkdir(options.dataDir, { recursive: true });
  const key = randomBytes(32);
  await writeFile(file, `${key.toString("hex")}\n`, { mode: 0o600, flag: "wx" }).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  return Buffer.from((await readFile(file, "utf8")).trim(), "hex");
}
