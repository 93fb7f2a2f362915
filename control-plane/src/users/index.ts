import { asc, eq, sql } from "drizzle-orm";
import { hashPassword } from "../auth/passwords.ts";
import { requireAdmin, type Actor, type Role, type User } from "../auth/index.ts";
import type { Database } from "../db/index.ts";
import { users } from "../db/schema.ts";
import { ConflictError, ForbiddenError, NotFoundError } from "../errors.ts";

export interface PublicUser {
  id: string;
  email: string;
  username: string;
  role: Role;
  suspended: boolean;
  created_at: string;
}

export function toPublic(user: User): PublicUser {
  return { id: user.id, email: user.email, username: user.username, role: user.role, suspended: user.suspended, created_at: user.createdAt.toISOString() };
}

export async function create(db: Database, actor: Actor, input: { email: string; username: string; password: string; role: Role }): Promise<User> {
  requireAdmin(actor);
  if (input.role === "owner") throw new ForbiddenError("there is only one owner; create an admin instead");
  const passwordHash = await hashPassword(input.password);
  const existing = await db.select({ id: users.id }).from(users)
    .where(sql`lower(${users.email}) = lower(${input.email}) OR lower(${users.username}) = lower(${input.username})`).limit(1);
  if (existing.length > 0) throw new ConflictError("user_exists", "a user with this email or username already exists", { email: input.email, username: input.username });
  const [user] = await db.insert(users).values({ email: input.email, username: input.username, passwordHash, role: input.role }).returning();
  return user!;
}

export async function list(db: Database, actor: Actor): Promise<User[]> {
  requireAdmin(actor);
  return db.select().from(users).orderBy(asc(users.createdAt));
}

export async function update(db: Database, actor: Actor, userId: string, input: { role?: Role; suspended?: boolean }): Promise<User> {
  requireAdmin(actor);
  const [target] = await db.select().from(users).where(eq(users.id, userId)).limit(1);
  if (!target) throw new NotFoundError("user", { id: userId });
  if (target.role === "owner") throw new ForbiddenError("the owner's role cannot be changed");
  if (input.role === "owner") throw new ForbiddenError("there is only one owner");
  const [updated] = await db.update(users).set(input).where(eq(users.id, userId)).returning();
  return updated!;
}
