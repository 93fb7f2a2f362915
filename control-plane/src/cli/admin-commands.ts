import { Command, InvalidArgumentError, Option } from "commander";
import { unwrap, type KilnClient, type Schemas } from "../client/index.ts";
import { providerTypes, type ProviderType } from "../llm/types.ts";
import { info, printJson, printTable, type OutputFormat } from "./output.ts";

type Session = () => Promise<{ client: KilnClient; url: string; token: string }>;
type Provider = Schemas["LlmProvider"];
type ProviderSettings = Provider["settings"];
type Model = Schemas["LlmModel"];

const outputOption = () => new Option("-o, --output <format>", "table or json").choices(["table", "json"]).default("table");

/** `kiln providers …` and `kiln models …`: LLM configuration for admins; `kiln models list` for everyone. */
export function registerAdminCommands(program: Command, session: Session): void {
  registerProviderCommands(program, session);
  registerModelCommands(program, session);
}

interface ProviderFlags {
  type?: ProviderType;
  name?: string;
  baseUrl?: string;
  clearBaseUrl?: boolean;
  apiKey?: string;
  apiKeyStdin?: boolean;
  clearApiKey?: boolean;
  apiVersion?: string;
  deployment?: string;
  region?: string;
  accessKeyId?: string;
  enabled?: boolean;
  output: OutputFormat;
}

function registerProviderCommands(program: Command, session: Session): void {
  const providers = program.command("providers").description("LLM providers and their API keys (admins)");

  const withSettingsOptions = (command: Command) => command
    .option("--base-url <url>", "endpoint replacing the provider's default (required for azure-openai and openai-compatible)")
    .option("--api-key <key>", "API key; for bedrock with --access-key-id, the AWS secret access key (prefer --api-key-stdin)")
    .option("--api-key-stdin", "read the API key from standard input")
    .option("--api-version <version>", "azure-openai: api-version")
    .option("--deployment <name>", "azure-openai: deployment name")
    .option("--region <region>", "bedrock: AWS region")
    .option("--access-key-id <id>", "bedrock: AWS access key id")
    .addOption(outputOption());

  providers.command("list").alias("ls").description("List providers (keys are never shown)").addOption(outputOption())
    .action(async (flags: { output: OutputFormat }) => {
      const { client } = await session();
      const { providers: rows } = unwrap(await client.GET("/api/v1/admin/providers"));
      if (flags.output === "json") return printJson(rows);
      printTable(rows.map((provider) => ({
        name: provider.name, type: provider.type, base_url: provider.base_url ?? "-", api_key: provider.has_api_key ? "set" : "-",
        settings: describeSettings(provider.settings), enabled: provider.enabled ? "yes" : "no",
      })), ["name", "type", "base_url", "api_key", "settings", "enabled"]);
    });

  withSettingsOptions(providers.command("create").description("Add a provider")
    .argument("<name>", "a name for it, e.g. anthropic")
    .addOption(new Option("-t, --type <type>", "provider type").choices(providerTypes).makeOptionMandatory())
    .option("--disabled", "create it disabled"))
    .action(async (name: string, flags: ProviderFlags & { disabled?: boolean }) => {
      const { client } = await session();
      const apiKey = await readApiKey(flags);
      const settings = settingsFrom(flags, {});
      const provider = unwrap(await client.POST("/api/v1/admin/providers", {
        body: { name, type: flags.type!, base_url: flags.baseUrl, api_key: apiKey, settings, enabled: flags.disabled ? false : undefined },
      }));
      if (flags.output === "json") return printJson(provider);
      info(`Created provider '${provider.name}' (${provider.type}). Add a model: kiln models create <model> --provider ${provider.name}`);
    });

  withSettingsOptions(providers.command("update").description("Change a provider; settings not given are kept")
    .argument("<provider>", "provider name or id")
    .option("--name <name>", "rename it")
    .addOption(new Option("-t, --type <type>", "change its type").choices(providerTypes))
    .option("--clear-base-url", "use the provider's default endpoint")
    .option("--clear-api-key", "remove the stored API key")
    .option("--enable", "enable it")
    .option("--disable", "disable it; its models become unavailable"))
    .action(async (reference: string, flags: ProviderFlags & { enable?: boolean; disable?: boolean }) => {
      const { client } = await session();
      if (flags.enable && flags.disable) throw new Error("pass --enable or --disable, not both");
      if (flags.clearApiKey && (flags.apiKey !== undefined || flags.apiKeyStdin)) throw new Error("pass --clear-api-key or a new key, not both");
      if (flags.clearBaseUrl && flags.baseUrl !== undefined) throw new Error("pass --clear-base-url or --base-url, not both");
      const current = await findProvider(client, reference);
      const apiKey = flags.clearApiKey ? null : await readApiKey(flags);
      // A new type starts from empty settings: the old type's (a Bedrock region, say) would not apply.
      const typeChanges = flags.type !== undefined && flags.type !== current.type;
      const settings = typeChanges ? (settingsFrom(flags, {}) ?? {}) : settingsFrom(flags, current.settings);
      const provider = unwrap(await client.PATCH("/api/v1/admin/providers/{id}", {
        params: { path: { id: current.id } },
        body: {
          name: flags.name,
          type: flags.type,
          base_url: flags.clearBaseUrl ? null : flags.baseUrl,
          api_key: apiKey,
          settings,
          enabled: flags.enable ? true : flags.disable ? false : undefined,
        },
      }));
      if (flags.output === "json") return printJson(provider);
      info(`Updated provider '${provider.name}'.`);
    });

  providers.command("delete").alias("rm").description("Delete a provider and its models")
    .argument("<provider>", "provider name or id")
    .action(async (reference: string) => {
      const { client } = await session();
      const provider = await findProvider(client, reference);
      unwrap(await client.DELETE("/api/v1/admin/providers/{id}", { params: { path: { id: provider.id } } }));
      info(`Deleted provider '${provider.name}' and its models.`);
    });
}

interface ModelFlags {
  displayName?: string;
  contextWindow?: number;
  compactionThreshold?: number;
  maxOutputTokens?: number;
  default?: boolean;
  output: OutputFormat;
}

function registerModelCommands(program: Command, session: Session): void {
  const models = program.command("models").description("LLM models chats can use");

  const withModelOptions = (command: Command) => command
    .option("--display-name <name>", "name shown to users")
    .option("--context-window <tokens>", "tokens the model accepts", integer("--context-window"))
    .option("--compaction-threshold <percent>", "percent of the context window that triggers compaction; 100 disables it", integer("--compaction-threshold"))
    .option("--max-output-tokens <tokens>", "largest response per step", integer("--max-output-tokens"))
    .option("--default", "make it the default model")
    .addOption(outputOption());

  models.command("list").alias("ls").description("List the models you can use (--all: every model, admins)")
    .option("-a, --all", "include disabled models (admins)")
    .addOption(outputOption())
    .action(async (flags: { all?: boolean; output: OutputFormat }) => {
      const { client } = await session();
      const { models: rows } = unwrap(flags.all ? await client.GET("/api/v1/admin/models") : await client.GET("/api/v1/models"));
      if (flags.output === "json") return printJson(rows);
      printTable(rows.map((model) => ({
        model: model.model, name: model.display_name || "-", provider: `${model.provider_name} (${model.provider_type})`,
        default: model.is_default ? "*" : "", enabled: model.enabled ? "yes" : "no", context: model.context_window,
        compaction: model.compaction_threshold >= 100 ? "off" : `${model.compaction_threshold}%`, max_output: model.max_output_tokens,
      })), ["model", "name", "provider", "default", ...(flags.all ? ["enabled"] : []), "context", "compaction", "max_output"]);
    });

  withModelOptions(models.command("create").description("Add a model to a provider")
    .argument("<model>", "the provider's model id, e.g. claude-sonnet-4-5")
    .requiredOption("-p, --provider <provider>", "provider name or id")
    .option("--disabled", "create it disabled"))
    .action(async (modelId: string, flags: ModelFlags & { provider: string; disabled?: boolean }) => {
      const { client } = await session();
      const provider = await findProvider(client, flags.provider);
      const model = unwrap(await client.POST("/api/v1/admin/models", {
        body: { provider_id: provider.id, model: modelId, ...modelBody(flags), enabled: flags.disabled ? false : undefined },
      }));
      if (flags.output === "json") return printJson(model);
      info(`Added model '${model.model}' to '${model.provider_name}'${model.is_default ? " as the default" : ""}.`);
    });

  withModelOptions(models.command("update").description("Change a model")
    .argument("<model>", "model id, name, or provider/model")
    .option("--model <id>", "change the provider's model id")
    .option("--enable", "enable it")
    .option("--disable", "disable it"))
    .action(async (reference: string, flags: ModelFlags & { model?: string; enable?: boolean; disable?: boolean }) => {
      const { client } = await session();
      if (flags.enable && flags.disable) throw new Error("pass --enable or --disable, not both");
      const current = await findModel(client, reference);
      const model = unwrap(await client.PATCH("/api/v1/admin/models/{id}", {
        params: { path: { id: current.id } },
        body: { model: flags.model, ...modelBody(flags), enabled: flags.enable ? true : flags.disable ? false : undefined },
      }));
      if (flags.output === "json") return printJson(model);
      info(`Updated model '${model.model}'.`);
    });

  models.command("default").description("Make a model the default for new chats")
    .argument("<model>", "model id, name, or provider/model")
    .addOption(outputOption())
    .action(async (reference: string, flags: { output: OutputFormat }) => {
      const { client } = await session();
      const current = await findModel(client, reference);
      const model = unwrap(await client.PATCH("/api/v1/admin/models/{id}", { params: { path: { id: current.id } }, body: { is_default: true } }));
      if (flags.output === "json") return printJson(model);
      info(`'${model.model}' (${model.provider_name}) is now the default model.`);
    });

  models.command("delete").alias("rm").description("Delete a model")
    .argument("<model>", "model id, name, or provider/model")
    .action(async (reference: string) => {
      const { client } = await session();
      const model = await findModel(client, reference);
      unwrap(await client.DELETE("/api/v1/admin/models/{id}", { params: { path: { id: model.id } } }));
      info(`Deleted model '${model.model}' from '${model.provider_name}'.`);
    });
}

async function findProvider(client: KilnClient, reference: string): Promise<Provider> {
  const { providers } = unwrap(await client.GET("/api/v1/admin/providers"));
  const wanted = reference.toLowerCase();
  const provider = providers.find((candidate) => candidate.id === wanted || candidate.name.toLowerCase() === wanted);
  if (!provider) throw new Error(`no provider '${reference}'; providers: ${providers.map((candidate) => candidate.name).join(", ") || "none"}`);
  return provider;
}

/** By id, provider/model, model id or display name, like the server resolves chat models. */
async function findModel(client: KilnClient, reference: string): Promise<Model> {
  const { models } = unwrap(await client.GET("/api/v1/admin/models"));
  const wanted = reference.toLowerCase();
  const exact = models.filter((model) => model.id === wanted || `${model.provider_name}/${model.model}`.toLowerCase() === wanted);
  const matches = exact.length > 0 ? exact : models.filter((model) => model.model.toLowerCase() === wanted || (model.display_name !== "" && model.display_name.toLowerCase() === wanted));
  const qualified = (list: Model[]) => list.map((model) => `${model.provider_name}/${model.model}`).join(", ");
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new Error(`'${reference}' matches several models; name one as provider/model: ${qualified(matches)}`);
  throw new Error(`no model '${reference}'; models: ${qualified(models) || "none"}`);
}

async function readApiKey(flags: ProviderFlags): Promise<string | undefined> {
  if (flags.apiKey !== undefined && flags.apiKeyStdin) throw new Error("pass --api-key or --api-key-stdin, not both");
  if (!flags.apiKeyStdin) return flags.apiKey;
  if (process.stdin.isTTY) info("Paste the API key, then press Ctrl-D:");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
  const key = Buffer.concat(chunks).toString("utf8").trim();
  if (!key) throw new Error("no API key on standard input");
  return key;
}

/** Provider settings with the flags applied; undefined when no settings flag was given (the server keeps them). */
function settingsFrom(flags: ProviderFlags, current: ProviderSettings): ProviderSettings | undefined {
  const changes = { api_version: flags.apiVersion, deployment: flags.deployment, region: flags.region, access_key_id: flags.accessKeyId };
  if (Object.values(changes).every((value) => value === undefined)) return undefined;
  const merged: ProviderSettings = { ...current };
  for (const [key, value] of Object.entries(changes) as [keyof ProviderSettings, string | undefined][]) {
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

function modelBody(flags: ModelFlags) {
  return {
    display_name: flags.displayName,
    context_window: flags.contextWindow,
    compaction_threshold: flags.compactionThreshold,
    max_output_tokens: flags.maxOutputTokens,
    is_default: flags.default ? true : undefined,
  };
}

function describeSettings(settings: ProviderSettings): string {
  const parts = Object.entries(settings).map(([key, value]) => `${key}=${value}`);
  return parts.length > 0 ? parts.join(" ") : "-";
}

function integer(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${flag} must be a whole number.`);
    return Number(value);
  };
}
