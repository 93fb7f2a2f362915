import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** Tokens look like `kiln_<id>_<secret>`: the id finds the row, the secret is compared against its stored hash. */
export interface GeneratedToken {
  id: string;
  secret: string;
  token: string;
  secretHash: string;
}

export function generateToken(prefix = "kiln"): GeneratedToken {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(24).toString("base64url");
  return { id, secret, token: `${prefix}_${id}_${secret}`, secretHash: sha256(secret) };
}

export function parseToken(token: string, prefix = "kiln"): { id: string; secret: string } | null {
  const match = new RegExp(`^${prefix}_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$`).exec(token);
  return match ? { id: match[1]!, secret: match[2]! } : null;
}

export function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Agent tokens are opaque random strings; only their SHA-256 is stored. */
export function generateAgentToken(): { token: string; hash: string } {
  const token = `kiln-agent_${randomBytes(32).toString("base64url")}`;
  return { token, hash: sha256(token) };
}
