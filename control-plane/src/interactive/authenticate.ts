import type { IncomingMessage } from "node:http";
import { bearerToken, SESSION_COOKIE } from "../api/routes/auth.ts";
import * as Auth from "../auth/index.ts";
import type { Database } from "../db/index.ts";
import { KilnError, UnauthorizedError } from "../errors.ts";

/**
 * The user behind a WebSocket upgrade: a bearer token (CLI), or the dashboard's session
 * cookie. A browser sends cookies on cross-site WebSocket handshakes too and a page cannot
 * be stopped from opening one, so a cookie only counts when the handshake's Origin is this
 * server itself.
 */
export async function authenticateUpgrade(db: Database, request: IncomingMessage): Promise<Auth.Actor> {
  const bearer = bearerToken(request.headers.authorization);
  if (bearer) return Auth.authenticate(db, bearer);
  const cookie = cookieValue(request.headers.cookie, SESSION_COOKIE);
  if (!cookie) throw new UnauthorizedError("authentication required: send 'Authorization: Bearer <token>' (run 'kiln login')");
  if (!sameOrigin(request)) throw new KilnError("cross_origin", "WebSocket handshakes authenticated by the session cookie must come from this server's own pages", 403);
  return Auth.authenticate(db, cookie);
}

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? "").split(";")) {
    const index = part.indexOf("=");
    if (index > 0 && part.slice(0, index).trim() === name) return decodeURIComponent(part.slice(index + 1).trim());
  }
  return null;
}

function sameOrigin(request: IncomingMessage): boolean {
  const origin = request.headers.origin;
  const host = request.headers["x-forwarded-host"] ?? request.headers.host;
  if (!origin || !host) return false;
  try {
    return new URL(origin).host === String(host).split(",")[0]!.trim();
  } catch {
    return false;
  }
}
