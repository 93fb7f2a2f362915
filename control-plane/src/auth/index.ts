import { and, count, eq, isNull, sql } from "drizzle-orm";
import type { Database } from "../db/index.ts";
import { apiTokens, users } from "../db/schema.ts";
import { ConflictError, ForbiddenError, KilnError, UnauthorizedError } from "../errors.ts";
import { hashPassword, verifyPassword } from "./passwords.ts";
import { generateToken, hashesEqual, parseToken, sha256 } from "./tokens.ts";

export type Role = "owner" | "admin" | "member";
export type User = typeof users.$inferSelect;

/** Who is asking: every domain function that touches user data takes one. */
export interface Actor {
  user: User;
  tokenId: string;
}

export const SESSION_LIFETIME_MS = 30 * 24 * 60 * 60 * 1000;

export function isAdmin(actor: Actor): boolean {
  return actor.user.role === "owner" || actor.user.role === "admin";
}

export function requireAdmin(actor: Actor): void {
  if (!isAdmin(actor)) throw new ForbiddenError("this action requires the admin or owner role");
}

export async function hasUsers(db: Database): Promise<boolean> {
  const [row] = await db.select({ value: count() }).from(users);
  return (row?.value ?? 0) > 0;
}

/** Creates the first user as owner. Refused once any user exists; concurrent attempts serialise on a lock. */
export async function bootstrapFirstUser(db: Database, input: { email: string; username: string; password: string }): Promise<{ user: User; token: string }> {
  const passwordHash = await hashPassword(input.password);
  return db.transaction(async (transaction) => {
    await transaction.execute(sql`LOCK TABLE users IN EXCLUSIVE MODE`);
    const [existing] = await transaction.select({ value: count() }).from(users);
    if ((existing?.value ?? 0) > 0) throw new ConflictError("already_bootstrapped", "this deployment already has users; log in instead");
    const [user] = await transaction.insert(users).values({ email: input.email, username: input.username, passwordHash, role: "owner" }).returning();
    const token = await insertToken(transaction as unknown as Database, user!.id, "session", "bootstrap", SESSION_LIFETIME_MS);
    return { user: user!, token };
  });
}

export async function login(db: Database, input: { login: string; password: string }): Promise<{ user: User; token: string }> {
  const [user] = await db.select().from(users)
    .where(sql`lower(${users.email}) = lower(${input.login}) OR lower(${users.username}) = lower(${input.login})`).limit(1);
  // Verify against a dummy hash when the user is unknown so timing does not reveal which logins exist.
  const valid = await verifyPassword(input.password, user?.passwordHash ?? DUMMY_HASH);
  if (!user || !valid) throw new KilnError("invalid_credentials", "incorrect login or password", 401);
  if (user.suspended) throw new KilnError("user_suspended", "this account is suspended", 403);
  const token = await insertToken(db, user.id, "session", "login", SESSION_LIFETIME_MS);
  return { user, token };
}

const DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

export async function createApiToken(db: Database, actor: Actor, input: { name: string; lifetimeMs?: number }): Promise<{ id: string; token: string }> {
  const token = await insertToken(db, actor.user.id, "api", input.name, input.lifetimeMs ?? null);
  return { id: parseToken(token)!.id, token };
}

async function insertToken(db: Database, userId: string, kind: "session" | "api", name: string, lifetimeMs: number | null): Promise<string> {
  const generated = generateToken();
  await db.insert(apiTokens).values({
    id: generated.id, userId, kind, name, secretHash: generated.secretHash,
    expiresAt: lifetimeMs ? new Date(Date.now() + lifetimeMs) : null,
  });
  return generated.token;
}

export async function authenticate(db: Database, token: string): Promise<Actor> {
  const parsed = parseToken(token);
  if (!parsed) throw new UnauthorizedError("malformed token");
  const [row] = await db.select({ token: apiTokens, user: users }).from(apiTokens)
    .innerJoin(users, eq(users.id, apiTokens.userId))
    .where(and(eq(apiTokens.id, parsed.id), isNull(apiTokens.revokedAt))).limit(1);
  if (!row || !hashesEqual(row.token.secretHash, sha256(parsed.secret))) throw new UnauthorizedError("invalid or revoked token");
  if (row.token.expiresAt && row.token.expiresAt.getTime() < Date.now()) throw new UnauthorizedError("token expired; log in again");
  if (row.user.suspended) throw new KilnError("user_suspended", "this account is suspended", 403);
  return { user: row.user, tokenId: row.token.id };
}

export async function revokeToken(db: Database, actor: Actor, tokenId: string): Promise<void> {
  const condition = isAdmin(actor) ? eq(apiTokens.id, tokenId) : and(eq(apiTokens.id, tokenId), eq(apiTokens.userId, actor.user.id));
  await db.update(apiTokens).set({ revokedAt: new Date() }).where(and(condition, isNull(apiTokens.revokedAt)));
}

export async function listApiTokens(db: Database, actor: Actor) {
  return db.select({ id: apiTokens.id, name: apiTokens.name, kind: apiTokens.kind, createdAt: apiTokens.createdAt, expiresAt: apiTokens.expiresAt })
    .from(apiTokens).where(and(eq(apiTokens.userId, actor.user.id), isNull(apiTokens.revokedAt), eq(apiTokens.kind, "api")));
}
