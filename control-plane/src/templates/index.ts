import { and, asc, eq, ilike, sql } from "drizzle-orm";
import type { Database } from "../db/index.ts";
import { templates, templateVersions } from "../db/schema.ts";
import { KilnError, NotFoundError } from "../errors.ts";

export type Template = typeof templates.$inferSelect;
export type TemplateVersion = typeof templateVersions.$inferSelect;

/** The embedded default: a directory on this machine plus a kiln-daemon child process. */
export async function ensureBuiltins(db: Database): Promise<void> {
  await db.transaction(async (transaction) => {
    await transaction.execute(sql`SELECT pg_advisory_xact_lock(7341130)`);
    const [existing] = await transaction.select().from(templates).where(and(eq(templates.name, "local"), eq(templates.deleted, false)));
    if (existing) return;
    const [template] = await transaction.insert(templates).values({
      name: "local", displayName: "Local", kind: "local",
      description: "A directory on the Kiln server's machine with its own kiln-daemon process. No isolation: for trying Kiln and for development.",
    }).returning();
    const [version] = await transaction.insert(templateVersions).values({ templateId: template!.id, name: "v1", parameters: [] }).returning();
    await transaction.update(templates).set({ activeVersionId: version!.id }).where(eq(templates.id, template!.id));
  });
}

export async function list(db: Database, options: { query?: string } = {}): Promise<Template[]> {
  const conditions = [eq(templates.deleted, false)];
  if (options.query) conditions.push(ilike(templates.name, `%${options.query.replace(/[%_\\]/g, "\\$&")}%`));
  return db.select().from(templates).where(and(...conditions)).orderBy(asc(templates.name));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function get(db: Database, idOrName: string): Promise<Template> {
  const condition = UUID.test(idOrName) ? eq(templates.id, idOrName) : sql`lower(${templates.name}) = lower(${idOrName})`;
  const [template] = await db.select().from(templates).where(and(condition, eq(templates.deleted, false))).limit(1);
  if (!template) throw new NotFoundError("template", { template: idOrName });
  return template;
}

export async function activeVersion(db: Database, template: Template): Promise<TemplateVersion> {
  if (!template.activeVersionId) {
    throw new KilnError("no_active_version", `template '${template.name}' has no usable version yet: push one and let its import succeed (kiln templates versions ${template.name})`, 409, { template: template.name });
  }
  const [version] = await db.select().from(templateVersions).where(eq(templateVersions.id, template.activeVersionId));
  if (!version) throw new NotFoundError("template version", { id: template.activeVersionId });
  return version;
}

export function toPublic(template: Template) {
  return {
    id: template.id,
    name: template.name,
    display_name: template.displayName,
    description: template.description,
    kind: template.kind,
    active_version_id: template.activeVersionId,
    created_at: template.createdAt.toISOString(),
  };
}
