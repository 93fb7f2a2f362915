import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The header carrying the control plane's per-build credential on every request over the tailnet. */
export const TAILNET_CREDENTIAL_HEADER = "x-kiln-tailnet-credential";

/** A fresh random credential (Kiln derives its own per agent instead: an HMAC of the agent id under the server key). */
export function createCredential(): string {
  return randomBytes(32).toString("base64url");
}

/** Constant-time comparison; hashing first makes the lengths equal. */
export function credentialMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(expected), digest(presented));
}
