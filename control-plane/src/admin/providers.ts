import { asc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { requireAdmin, type Actor } from "../auth/index.ts";
import type { Database, Executor } from "../db/index.ts";
import { providers } from "../db/schema.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { providerTypes, type ProviderConfig, type ProviderType } from "../llm/index.ts";
import type { SecretBox } from "../secrets/index.ts";

export type ProviderRow = typeof providers.$inferSelect;

/** Non-secret per-provider settings, stored as JSON beside the sealed key. */
export const ProviderSettings = z.strictObject({
  api_version: z.string().min(1).max(64).optional().describe("azure-openai: the api-version query parameter"),
  deployment: z.string().min(1).max(256).optional().describe("azure-openai: the deployment name"),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "an AWS region such as us-east-1").optional().describe("bedrock: the AWS region"),
  access_key_id: z.string().regex(/^[A-Z0-9]{16,128}$/, "an AWS access key id such as AKIA…").optional()
    .describe("bedrock: the AWS access key id; api_key then holds the secret access key"),
});
export type ProviderSettings = z.infer<typeof ProviderSettings>;

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, "1-64 letters, digits, spaces, '.', '_' or '-'");
const baseUrl = z.url({ protocol: /^https?$/, error: "an http(s) URL" }).max(2048);
const apiKey = z.string().min(1).max(16_384).describe("write-only: sealed at rest and never returned");

export const CreateProviderInput = z.strictObject({
  name,
  type: z.enum(providerTypes),
  base_url: baseUrl.optional().describe("replaces the provider's default endpoint (required for azure-openai and openai-compatible)"),
  api_key: apiKey.optional(),
  settings: ProviderSettings.optional(),
  enabled: z.boolean().optional(),
});
export type CreateProviderInput = z.infer<typeof CreateProviderInput>;

export const UpdateProviderInput = z.strictObject({
  name: name.optional(),
  type: z.enum(providerTypes).optional(),
  base_url: baseUrl.nullable().optional().describe("null restores the provider's default endpoint"),
  api_key: apiKey.nullable().optional().describe("write-only; null removes the stored key, omitted keeps it"),
  settings: ProviderSettings.optional().describe("replaces all settings"),
  enabled: z.boolean().optional(),
});
export type UpdateProviderInput = z.infer<typeof UpdateProviderInput>;

/** What the API shows: whether a key is stored, never the key nor any part of it. */
export const Provider = z.object({
  id: z.uuid(),
  name: z.string(),
  type: z.enum(providerTypes),
  base_url: z.string().nullable(),
  settings: ProviderSettings,
  has_api_key: z.boolean(),
  enabled: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type Provider = z.infer<typeof Provider>;

export function toPublic(row: ProviderRow): Provider {
  return {
    id: row.id,
    name: row.name,
    type: row.type,
    base_url: row.baseUrl,
    settings: readSettings(row.settings),
    has_api_key: row.secretCiphertext !== null,
    enabled: row.enabled,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

export async function create(db: Database, secrets: SecretBox, actor: Actor, input: CreateProviderInput): Promise<ProviderRow> {
  requireAdmin(actor);
  return insert(db, secrets, input);
}

export async function list(db: Database, actor: Actor): Promise<ProviderRow[]> {
  requireAdmin(actor);
  return db.select().from(providers).orderBy(asc(providers.createdAt), asc(providers.name));
}

export async function update(db: Database, secrets: SecretBox, actor: Actor, id: string, input: UpdateProviderInput): Promise<ProviderRow> {
  requireAdmin(actor);
  const current = await find(db, id);
  const next = {
    type: input.type ?? current.type,
    baseUrl: input.base_url === undefined ? current.baseUrl : input.base_url,
    settings: input.settings ?? readSettings(current.settings),
    hasKey: input.api_key === undefined ? current.secretCiphertext !== null : input.api_key !== null,
  };
  checkConfig(next);
  if (input.name !== undefined && input.name.toLowerCase() !== current.name.toLowerCase()) await ensureNameFree(db, input.name);
  const [updated] = await db.update(providers).set({
    name: input.name,
    type: next.type,
    baseUrl: next.baseUrl,
    settings: next.settings,
    ...(input.api_key === undefined ? {} : { secretCiphertext: input.api_key === null ? null : secrets.seal(input.api_key) }),
    enabled: input.enabled,
    updatedAt: new Date(),
  }).where(eq(providers.id, id)).returning();
  if (!updated) throw new NotFoundError("provider", { id });
  return updated;
}

/** Deletes the provider and, by cascade, its models; chats on those models fall back to the default model. */
export async function remove(db: Database, actor: Actor, id: string): Promise<void> {
  requireAdmin(actor);
  const deleted = await db.delete(providers).where(eq(providers.id, id)).returning({ id: providers.id });
  if (deleted.length === 0) throw new NotFoundError("provider", { id });
}

/** The llm layer's config for a stored provider, with its key opened. Keep the result out of logs and responses. */
export function providerConfig(secrets: SecretBox, row: ProviderRow): ProviderConfig {
  const secret = row.secretCiphertext === null ? undefined : secrets.open(row.secretCiphertext);
  const settings = readSettings(row.settings);
  const config: ProviderConfig = { type: row.type };
  if (row.baseUrl) config.baseUrl = row.baseUrl;
  switch (row.type) {
    case "azure-openai":
      if (settings.api_version) config.apiVersion = settings.api_version;
      if (settings.deployment) config.deployment = settings.deployment;
      if (secret !== undefined) config.apiKey = secret;
      break;
    case "bedrock":
      if (settings.region) config.region = settings.region;
      // With an access key id the secret is the AWS secret access key; alone it is a Bedrock API key.
      if (settings.access_key_id && secret !== undefined) {
        config.accessKeyId = settings.access_key_id;
        config.secretAccessKey = secret;
      } else if (secret !== undefined) {
        config.apiKey = secret;
      }
      break;
    default:
      if (secret !== undefined) config.apiKey = secret;
  }
  return config;
}

/** Inserts without an authorization check: for `create` and for configuring from the environment at start. */
export async function insert(executor: Executor, secrets: SecretBox, input: CreateProviderInput): Promise<ProviderRow> {
  const settings = input.settings ?? {};
  checkConfig({ type: input.type, baseUrl: input.base_url ?? null, settings, hasKey: input.api_key !== undefined });
  await ensureNameFree(executor, input.name);
  const [row] = await executor.insert(providers).values({
    name: input.name,
    type: input.type,
    baseUrl: input.base_url ?? null,
    settings,
    secretCiphertext: input.api_key === undefined ? null : secrets.seal(input.api_key),
    enabled: input.enabled ?? true,
  }).returning();
  return row!;
}

async function find(executor: Executor, id: string): Promise<ProviderRow> {
  const [row] = await executor.select().from(providers).where(eq(providers.id, id)).limit(1);
  if (!row) throw new NotFoundError("provider", { id });
  return row;
}

async function ensureNameFree(executor: Executor, providerName: string): Promise<void> {
  const [existing] = await executor.select({ id: providers.id }).from(providers).where(sql`lower(${providers.name}) = lower(${providerName})`).limit(1);
  if (existing) throw new ConflictError("provider_exists", `a provider named '${providerName}' already exists`, { name: providerName });
}

/** What each provider type needs before its SDK can make a call. */
function checkConfig(config: { type: ProviderType; baseUrl: string | null; settings: ProviderSettings; hasKey: boolean }): void {
  const fail = (field: string, reason: string) => {
    throw new ValidationError(`${field}: ${reason}`, { field, reason });
  };
  const { type, settings } = config;
  if ((type === "azure-openai" || type === "openai-compatible") && !config.baseUrl) fail("base_url", `required for ${type}`);
  if (type === "azure-openai" && !settings.api_version) fail("settings.api_version", "required for azure-openai");
  if (type !== "azure-openai" && (settings.api_version || settings.deployment)) fail("settings", `api_version and deployment apply to azure-openai only`);
  if (type === "bedrock" && !settings.region) fail("settings.region", "required for bedrock");
  if (type !== "bedrock" && (settings.region || settings.access_key_id)) fail("settings", "region and access_key_id apply to bedrock only");
  if (type === "bedrock" && settings.access_key_id && !config.hasKey) fail("api_key", "the AWS secret access key is required with settings.access_key_id");
  if ((type === "anthropic" || type === "openai" || type === "azure-openai" || type === "google") && !config.hasKey) fail("api_key", `required for ${type}`);
}

/** Settings as stored, keeping the known keys that are still valid and dropping anything else. */
function readSettings(value: unknown): ProviderSettings {
  const stored = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const settings: ProviderSettings = {};
  for (const key of Object.keys(ProviderSettings.shape) as (keyof ProviderSettings)[]) {
    const parsed = ProviderSettings.shape[key].safeParse(stored[key]);
    if (parsed.success && parsed.data !== undefined) settings[key] = parsed.data;
  }
  return settings;
}
