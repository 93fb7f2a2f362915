import { and, asc, desc, eq, ne, sql } from "drizzle-orm";
import { z } from "zod";
import { requireAdmin, type Actor } from "../auth/index.ts";
import type { Database, Executor } from "../db/index.ts";
import { models, providers } from "../db/schema.ts";
import { ConflictError, KilnError, NotFoundError, ValidationError } from "../errors.ts";
import { createProvider, providerTypes, type LlmProvider, type ProviderType } from "../llm/index.ts";
import type { SecretBox } from "../secrets/index.ts";
import { providerConfig, type ProviderRow } from "./providers.ts";

export type ModelRow = typeof models.$inferSelect;

const modelFields = {
  model: z.string().regex(/^\S{1,256}$/, "the provider's model id: 1-256 characters, no spaces").describe("the provider's model id, e.g. claude-sonnet-4-5"),
  display_name: z.string().max(128).optional(),
  enabled: z.boolean().optional(),
  is_default: z.boolean().optional().describe("make this the default model; the previous default stops being one"),
  context_window: z.number().int().min(1024).max(100_000_000).optional().describe("tokens the model accepts"),
  compaction_threshold: z.number().int().min(1).max(100).optional().describe("percent of the context window that triggers compaction; 100 disables it"),
  max_output_tokens: z.number().int().min(1).max(1_000_000).optional(),
};

export const CreateModelInput = z.strictObject({ provider_id: z.uuid(), ...modelFields });
export type CreateModelInput = z.infer<typeof CreateModelInput>;

export const UpdateModelInput = z.strictObject({ ...modelFields, model: modelFields.model.optional() });
export type UpdateModelInput = z.infer<typeof UpdateModelInput>;

/** A model as admins and members see it: with its provider's name and type, never the provider's secrets. */
export const Model = z.object({
  id: z.uuid(),
  provider_id: z.uuid(),
  provider_name: z.string(),
  provider_type: z.enum(providerTypes),
  model: z.string(),
  display_name: z.string(),
  enabled: z.boolean(),
  is_default: z.boolean(),
  context_window: z.number().int(),
  compaction_threshold: z.number().int(),
  max_output_tokens: z.number().int(),
  created_at: z.string(),
});
export type Model = z.infer<typeof Model>;

export function toPublic(row: ModelRow, provider: Pick<ProviderRow, "name" | "type">): Model {
  return {
    id: row.id,
    provider_id: row.providerId,
    provider_name: provider.name,
    provider_type: provider.type,
    model: row.model,
    display_name: row.displayName,
    enabled: row.enabled,
    is_default: row.isDefault,
    context_window: row.contextWindow,
    compaction_threshold: row.compactionThreshold,
    max_output_tokens: row.maxOutputTokens,
    created_at: row.createdAt.toISOString(),
  };
}

export async function list(db: Database, actor: Actor): Promise<Model[]> {
  requireAdmin(actor);
  return (await rowsWithProviders(db)).map((row) => toPublic(row.model, row.provider));
}

/** The models members may pick: enabled, on an enabled provider. The default comes first. */
export async function listEnabled(db: Database): Promise<Model[]> {
  return (await rowsWithProviders(db)).filter(usable).map((row) => toPublic(row.model, row.provider));
}

export async function create(db: Database, actor: Actor, input: CreateModelInput): Promise<Model> {
  requireAdmin(actor);
  return insert(db, input);
}

export async function update(db: Database, actor: Actor, id: string, input: UpdateModelInput): Promise<Model> {
  requireAdmin(actor);
  return db.transaction(async (transaction) => {
    if (input.is_default) await lockForDefault(transaction);
    const [current] = await transaction.select().from(models).where(eq(models.id, id)).limit(1);
    if (!current) throw new NotFoundError("model", { id });
    const enabled = input.enabled ?? current.enabled;
    // Disabling the default leaves no default; resolving then falls back to the first enabled model.
    const isDefault = enabled ? (input.is_default ?? current.isDefault) : false;
    checkLimits({
      enabled,
      isDefault: input.is_default ?? false,
      contextWindow: input.context_window ?? current.contextWindow,
      maxOutputTokens: input.max_output_tokens ?? current.maxOutputTokens,
    });
    if (input.model !== undefined && input.model !== current.model) await ensureModelFree(transaction, current.providerId, input.model);
    if (input.is_default) await transaction.update(models).set({ isDefault: false }).where(and(eq(models.isDefault, true), ne(models.id, id)));
    const [updated] = await transaction.update(models).set({
      model: input.model,
      displayName: input.display_name,
      enabled,
      isDefault,
      contextWindow: input.context_window,
      compactionThreshold: input.compaction_threshold,
      maxOutputTokens: input.max_output_tokens,
    }).where(eq(models.id, id)).returning();
    return view(transaction, updated!);
  });
}

export async function remove(db: Database, actor: Actor, id: string): Promise<void> {
  requireAdmin(actor);
  const deleted = await db.delete(models).where(eq(models.id, id)).returning({ id: models.id });
  if (deleted.length === 0) throw new NotFoundError("model", { id });
}

/** Inserts without an authorization check: for `create` and for configuring from the environment at start. */
export async function insert(executor: Executor, input: CreateModelInput): Promise<Model> {
  return executor.transaction(async (transaction) => {
    if (input.is_default) await lockForDefault(transaction);
    const [provider] = await transaction.select({ id: providers.id }).from(providers).where(eq(providers.id, input.provider_id)).limit(1);
    if (!provider) throw new ValidationError("provider_id: no such provider", { field: "provider_id", reason: "no such provider" });
    const enabled = input.enabled ?? true;
    const contextWindow = input.context_window ?? 200_000;
    const maxOutputTokens = input.max_output_tokens ?? Math.min(8192, contextWindow - 1);
    checkLimits({ enabled, isDefault: input.is_default ?? false, contextWindow, maxOutputTokens });
    await ensureModelFree(transaction, input.provider_id, input.model);
    if (input.is_default) await transaction.update(models).set({ isDefault: false }).where(eq(models.isDefault, true));
    const [row] = await transaction.insert(models).values({
      providerId: input.provider_id,
      model: input.model,
      displayName: input.display_name ?? "",
      enabled,
      isDefault: input.is_default ?? false,
      contextWindow,
      compactionThreshold: input.compaction_threshold,
      maxOutputTokens,
    }).returning();
    return view(transaction, row!);
  });
}

export interface ResolvedModel {
  model: ModelRow;
  /** Ready to stream; shared between calls while the provider's configuration is unchanged. */
  provider: LlmProvider;
  providerType: ProviderType;
}

/**
 * The model to run: `reference` is a model id, its model name or display name (case-insensitive), or
 * `provider/model`; null (or blank) picks the default, else the first enabled model. A name served by several
 * providers resolves to the default, else the oldest.
 */
export async function resolve(db: Database, secrets: SecretBox, reference: string | null): Promise<ResolvedModel> {
  const rows = await rowsWithProviders(db);
  const available = rows.filter(usable);
  const refuse = (reason: string): never => {
    const names = availableNames(available);
    throw new KilnError("unknown_model", `${reason}; available models: ${names.length > 0 ? names.join(", ") : "none (an admin must add a provider and a model)"}`, 400, {
      field: "model",
      reason,
      available: names,
    });
  };
  if (reference === null || reference.trim() === "") {
    const chosen = available[0] ?? refuse("no models are enabled");
    return { model: chosen.model, provider: sharedProvider(secrets, chosen.provider), providerType: chosen.provider.type };
  }
  const wanted = reference.trim().toLowerCase();
  const matches = rows.filter(({ model, provider }) =>
    model.id === wanted ||
    model.model.toLowerCase() === wanted ||
    (model.displayName !== "" && model.displayName.toLowerCase() === wanted) ||
    `${provider.name}/${model.model}`.toLowerCase() === wanted);
  const chosen = matches.find(usable);
  if (chosen) return { model: chosen.model, provider: sharedProvider(secrets, chosen.provider), providerType: chosen.provider.type };
  const disabled = matches[0];
  if (!disabled) return refuse(`no model named '${reference}'`);
  return refuse(disabled.provider.enabled ? `model '${reference}' is disabled` : `the provider of model '${reference}' (${disabled.provider.name}) is disabled`);
}

// SDK clients are reused per SecretBox (one per running server, one per test app), so nothing global needs resetting.
const clientCache = new WeakMap<SecretBox, Map<string, { version: string; provider: LlmProvider }>>();

function sharedProvider(secrets: SecretBox, row: ProviderRow): LlmProvider {
  let cache = clientCache.get(secrets);
  if (!cache) clientCache.set(secrets, (cache = new Map()));
  // The sealed key changes with every write (fresh IV), so this detects any edit, even two within one millisecond.
  const version = JSON.stringify([row.type, row.baseUrl, row.settings, row.secretCiphertext, row.updatedAt.getTime()]);
  const cached = cache.get(row.id);
  if (cached?.version === version) return cached.provider;
  const provider = createProvider(providerConfig(secrets, row));
  cache.set(row.id, { version, provider });
  return provider;
}

type ModelWithProvider = { model: ModelRow; provider: ProviderRow };

async function rowsWithProviders(executor: Executor): Promise<ModelWithProvider[]> {
  return executor.select({ model: models, provider: providers }).from(models)
    .innerJoin(providers, eq(providers.id, models.providerId))
    .orderBy(desc(models.isDefault), asc(models.createdAt), asc(models.model));
}

function usable(row: ModelWithProvider): boolean {
  return row.model.enabled && row.provider.enabled;
}

/** Bare model names, qualified as provider/model where two providers serve the same one. */
function availableNames(rows: ModelWithProvider[]): string[] {
  const counts = new Map<string, number>();
  for (const { model } of rows) counts.set(model.model.toLowerCase(), (counts.get(model.model.toLowerCase()) ?? 0) + 1);
  return rows.map(({ model, provider }) => ((counts.get(model.model.toLowerCase()) ?? 0) > 1 ? `${provider.name}/${model.model}` : model.model));
}

async function view(executor: Executor, row: ModelRow): Promise<Model> {
  const [provider] = await executor.select({ name: providers.name, type: providers.type }).from(providers).where(eq(providers.id, row.providerId)).limit(1);
  return toPublic(row, provider!);
}

/** Serialises default switches so two concurrent ones cannot both leave a default behind. */
async function lockForDefault(executor: Executor): Promise<void> {
  await executor.execute(sql`LOCK TABLE ${models} IN SHARE ROW EXCLUSIVE MODE`);
}

async function ensureModelFree(executor: Executor, providerId: string, model: string): Promise<void> {
  const [existing] = await executor.select({ id: models.id }).from(models).where(and(eq(models.providerId, providerId), eq(models.model, model))).limit(1);
  if (existing) throw new ConflictError("model_exists", `this provider already has model '${model}'`, { provider_id: providerId, model });
}

function checkLimits(values: { enabled: boolean; isDefault: boolean; contextWindow: number; maxOutputTokens: number }): void {
  if (values.isDefault && !values.enabled) throw new ValidationError("is_default: a disabled model cannot be the default", { field: "is_default", reason: "a disabled model cannot be the default" });
  if (values.maxOutputTokens >= values.contextWindow) {
    const reason = `must be less than the context window (${values.contextWindow})`;
    throw new ValidationError(`max_output_tokens: ${reason}`, { field: "max_output_tokens", reason });
  }
}
