import { count, sql } from "drizzle-orm";
import type { Database, Executor } from "../db/index.ts";
import { providers } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import type { SecretBox } from "../secrets/index.ts";
import * as Models from "./models.ts";
import * as Providers from "./providers.ts";

export type Environment = Readonly<Record<string, string | undefined>>;

interface Candidate {
  provider: Providers.CreateProviderInput;
  model: Omit<Models.CreateModelInput, "provider_id" | "is_default">;
  /** The variables it came from, to name in errors. */
  variables: string[];
  /** A note for the log line, e.g. where credentials come from. */
  note?: string;
}

interface Configured {
  created: { provider: Providers.ProviderRow; model: Models.Model; note?: string }[];
  defaultModel: Models.Model;
  /** KILN_MODEL named a model the environment did not configure, so it was added. */
  added: boolean;
}

const ModelFromEnvironment = Models.CreateModelInput.omit({ provider_id: true });

/**
 * First start without any provider: configures providers and their default models from the usual API key
 * variables, so `ANTHROPIC_API_KEY=… kiln server` is enough to chat. Does nothing once any provider exists,
 * so later edits in the dashboard or CLI win. `KILN_MODEL` (`model` or `provider/model`) picks the default,
 * adding it when no provider's model matches; otherwise the first configured provider's model is it.
 * Malformed values (a base URL that is not one) fail the start with the variable named.
 */
export async function configureFromEnvironment(db: Database, secrets: SecretBox, env: Environment, log: Logger): Promise<{ providers: string[]; defaultModel: string | null }> {
  const candidates = candidatesFrom(env);
  for (const candidate of candidates) check(candidate);
  const configured = await db.transaction(async (transaction) => {
    // Replicas starting together must not both configure.
    await transaction.execute(sql`LOCK TABLE ${providers} IN EXCLUSIVE MODE`);
    const [existing] = await transaction.select({ value: count() }).from(providers);
    if ((existing?.value ?? 0) > 0) return "skipped" as const;
    return configure(transaction, secrets, candidates, env.KILN_MODEL?.trim() || null);
  });
  if (configured === "skipped") {
    log.debug("llm providers already configured; environment keys ignored");
    return { providers: [], defaultModel: null };
  }
  if (configured === null) {
    log.info("no llm provider configured: set ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY or AWS credentials, or run 'kiln providers create'");
    return { providers: [], defaultModel: null };
  }
  for (const { provider, model, note } of configured.created) {
    log.info({ provider: provider.name, type: provider.type, model: model.model, ...(note ? { note } : {}) }, "llm provider configured from environment");
  }
  const { defaultModel } = configured;
  log.info({ provider: defaultModel.provider_name, model: defaultModel.model, ...(configured.added ? { note: "added from KILN_MODEL" } : {}) }, "default llm model");
  return { providers: configured.created.map(({ provider }) => provider.name), defaultModel: defaultModel.model };
}

async function configure(executor: Executor, secrets: SecretBox, candidates: Candidate[], wantedDefault: string | null): Promise<Configured | null> {
  if (candidates.length === 0) return null;
  const wanted = wantedDefault === null ? null : parseReference(wantedDefault);
  // -1: KILN_MODEL names a model the environment did not configure; it is added below as the default.
  const defaultIndex = wanted === null ? 0 : candidates.findIndex((candidate) => matches(candidate, wanted));
  const created: Configured["created"] = [];
  for (const [index, candidate] of candidates.entries()) {
    const provider = await Providers.insert(executor, secrets, candidate.provider);
    const model = await Models.insert(executor, { ...candidate.model, provider_id: provider.id, is_default: index === defaultIndex });
    created.push({ provider, model, note: candidate.note });
  }
  if (wanted === null || defaultIndex !== -1) return { created, defaultModel: created[Math.max(defaultIndex, 0)]!.model, added: false };
  const named = created.find(({ provider }) => provider.name.toLowerCase() === wanted.providerName);
  const target = named?.provider ?? created[0]!.provider;
  const model = named ? wanted.model : wanted.raw;
  const parsed = ModelFromEnvironment.safeParse({ model });
  if (!parsed.success) throw new Error(`KILN_MODEL: '${model}' is not a model id (${parsed.error.issues[0]?.message})`);
  return { created, defaultModel: await Models.insert(executor, { provider_id: target.id, model, is_default: true }), added: true };
}

/** The same rules the API applies, with the environment variables named when one is off. */
function check(candidate: Candidate): void {
  const issues = [
    ...(Providers.CreateProviderInput.safeParse(candidate.provider).error?.issues ?? []),
    ...(ModelFromEnvironment.safeParse(candidate.model).error?.issues ?? []),
  ];
  if (issues.length === 0) return;
  const summary = issues.map((issue) => `${issue.path.join(".") || "(value)"}: ${issue.message}`).join("; ");
  throw new Error(`cannot configure the ${candidate.provider.name} provider from ${candidate.variables.join(", ")}: ${summary}`);
}

/** `model` or `provider/model`; model ids may contain '/' themselves (Qwen/Qwen3-Coder), so the raw form is kept too. */
function parseReference(raw: string): { raw: string; providerName: string | null; model: string } {
  const slash = raw.indexOf("/");
  return slash > 0 ? { raw, providerName: raw.slice(0, slash).toLowerCase(), model: raw.slice(slash + 1) } : { raw, providerName: null, model: raw };
}

function matches(candidate: Candidate, wanted: { raw: string; providerName: string | null; model: string }): boolean {
  const model = candidate.model.model.toLowerCase();
  return model === wanted.raw.toLowerCase() || (candidate.provider.name === wanted.providerName && model === wanted.model.toLowerCase());
}

function candidatesFrom(env: Environment): Candidate[] {
  const value = (name: string) => env[name]?.trim() || undefined;
  const candidates: Candidate[] = [];

  const anthropicKey = value("ANTHROPIC_API_KEY");
  if (anthropicKey) {
    candidates.push({
      provider: { name: "anthropic", type: "anthropic", api_key: anthropicKey, base_url: value("ANTHROPIC_BASE_URL") },
      model: { model: "claude-sonnet-4-5", display_name: "Claude Sonnet 4.5", context_window: 200_000, max_output_tokens: 32_000 },
      variables: ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"],
    });
  }

  const openAiKey = value("OPENAI_API_KEY");
  if (openAiKey) {
    const baseUrl = value("OPENAI_BASE_URL");
    const model = value("OPENAI_MODEL") ?? "gpt-5";
    candidates.push({
      provider: { name: "openai", type: baseUrl ? "openai-compatible" : "openai", api_key: openAiKey, base_url: baseUrl },
      // Other servers' models rarely have GPT-5's window; a smaller guess keeps compaction ahead of overflows.
      model: { model, context_window: model.startsWith("gpt-5") ? 400_000 : 128_000, max_output_tokens: 32_000 },
      variables: ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"],
    });
  }

  const geminiKey = value("GEMINI_API_KEY");
  if (geminiKey) {
    candidates.push({
      provider: { name: "google", type: "google", api_key: geminiKey },
      model: { model: "gemini-2.5-pro", display_name: "Gemini 2.5 Pro", context_window: 1_048_576, max_output_tokens: 32_768 },
      variables: ["GEMINI_API_KEY"],
    });
  }

  const accessKeyId = value("AWS_ACCESS_KEY_ID");
  const secretAccessKey = value("AWS_SECRET_ACCESS_KEY");
  if (accessKeyId && secretAccessKey) {
    const region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") ?? "us-east-1";
    // Temporary credentials expire, so they are not stored: the SDK reads them (and their refreshes) from this environment.
    const temporary = value("AWS_SESSION_TOKEN") !== undefined;
    candidates.push({
      provider: temporary
        ? { name: "bedrock", type: "bedrock", settings: { region } }
        : { name: "bedrock", type: "bedrock", api_key: secretAccessKey, settings: { region, access_key_id: accessKeyId } },
      model: { model: "anthropic.claude-sonnet-4-5-20250929-v1:0", display_name: "Claude Sonnet 4.5 (Bedrock)", context_window: 200_000, max_output_tokens: 32_000 },
      variables: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"],
      note: temporary ? "temporary AWS credentials are read from the server environment, not stored" : undefined,
    });
  }
  return candidates;
}
