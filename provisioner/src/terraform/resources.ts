import { TemplateParameter } from "./parameters.ts";

/** A script the agent runs: coder_script, or coder_agent's startup_script / shutdown_script. */
export interface ScriptDefinition {
  display_name: string;
  script: string;
  run_on_start: boolean;
  run_on_stop: boolean;
  /** Blocking: the agent is `ready` only once it has finished. */
  start_blocks_login: boolean;
  /** Seconds; 0 means no limit. */
  timeout: number;
  cron: string;
  log_path: string;
  icon: string;
}

export interface MetadataDefinition {
  key: string;
  display_name: string;
  script: string;
  /** Seconds between runs. */
  interval: number;
  /** Seconds a run may take. */
  timeout: number;
  order: number;
}

export interface AppDefinition {
  slug: string;
  display_name: string;
  url: string;
  command: string;
  icon: string;
  external: boolean;
  subdomain: boolean;
  share: string;
  order: number;
  group: string;
  hidden: boolean;
  open_in: string;
  healthcheck: { url: string; interval: number; threshold: number } | null;
}

/** A coder_agent with what belongs to it. `token` is only set from a build's state, never from an import. */
export interface AgentDefinition {
  /** The Terraform resource name, e.g. `main`. */
  name: string;
  address: string;
  /** The resource id Terraform gave the agent (state only). */
  id: string | null;
  os: string;
  arch: string;
  directory: string;
  env: Record<string, string>;
  connection_timeout: number;
  motd_file: string;
  troubleshooting_url: string;
  order: number;
  scripts: ScriptDefinition[];
  metadata: MetadataDefinition[];
  apps: AppDefinition[];
  token?: string;
}

export interface WorkspaceResource {
  address: string;
  type: string;
  name: string;
  /** Names of the agents that run on this resource (from its dependencies). */
  agents: string[];
  hide: boolean;
  icon: string;
  daily_cost: number;
  metadata: { key: string; value: string; sensitive: boolean }[];
}

/** The facts a template import finds. */
export interface TemplateSchema {
  parameters: TemplateParameter[];
  agents: AgentDefinition[];
  resources: WorkspaceResource[];
}

// ── Terraform's JSON output (terraform show -json) ─────────────────────────────

interface JsonResource {
  address: string;
  mode: "managed" | "data";
  type: string;
  name: string;
  index?: number | string;
  values?: Record<string, unknown>;
  depends_on?: string[];
}
interface JsonModule {
  address?: string;
  resources?: JsonResource[];
  child_modules?: JsonModule[];
}
interface JsonConfigModule {
  resources?: { address: string; expressions?: Record<string, { references?: string[] }> }[];
  module_calls?: Record<string, { module?: JsonConfigModule }>;
}
export interface JsonPlan {
  planned_values?: { root_module?: JsonModule };
  prior_state?: { values?: { root_module?: JsonModule } };
  configuration?: { root_module?: JsonConfigModule };
}
export interface JsonState {
  values?: { root_module?: JsonModule };
}

function flatten(module: JsonModule | undefined): JsonResource[] {
  if (!module) return [];
  return [...(module.resources ?? []), ...(module.child_modules ?? []).flatMap(flatten)];
}

/** `module.a.coder_agent.main[0]` → `module.a.coder_agent.main`: how configuration addresses name it. */
function configAddress(address: string): string {
  return address.replace(/\[[^\]]*\]/g, "");
}

/** Expression references by resource address (configuration addresses, modules prefixed). */
function referencesOf(module: JsonConfigModule | undefined, prefix = ""): Map<string, Record<string, string[]>> {
  const result = new Map<string, Record<string, string[]>>();
  if (!module) return result;
  for (const resource of module.resources ?? []) {
    const expressions: Record<string, string[]> = {};
    for (const [name, expression] of Object.entries(resource.expressions ?? {})) {
      if (expression?.references) expressions[name] = expression.references.map((reference) => `${prefix}${reference}`);
    }
    result.set(`${prefix}${resource.address}`, expressions);
  }
  for (const [name, call] of Object.entries(module.module_calls ?? {})) {
    for (const [address, expressions] of referencesOf(call.module, `${prefix}module.${name}.`)) result.set(address, expressions);
  }
  return result;
}

const string = (value: unknown, fallback = ""): string => (typeof value === "string" ? value : fallback);
const number = (value: unknown, fallback = 0): number => (typeof value === "number" ? value : fallback);
const boolean = (value: unknown, fallback = false): boolean => (typeof value === "boolean" ? value : fallback);
const list = (value: unknown): Record<string, unknown>[] => (Array.isArray(value) ? value.filter((item) => item && typeof item === "object") : []);

function parameterOf(values: Record<string, unknown>): TemplateParameter {
  const validation = list(values.validation)[0];
  const defaultValue = values.default;
  return TemplateParameter.parse({
    name: string(values.name),
    display_name: string(values.display_name),
    description: string(values.description),
    type: string(values.type, "string") || "string",
    form_type: string(values.form_type),
    mutable: boolean(values.mutable),
    ephemeral: boolean(values.ephemeral),
    default: typeof defaultValue === "string" ? defaultValue : null,
    icon: string(values.icon),
    options: list(values.option).map((option) => ({ name: string(option.name), description: string(option.description), value: string(option.value), icon: string(option.icon) })),
    validation: validation ? {
      min: validation.min_disabled === true || validation.min === null || validation.min === undefined ? null : number(validation.min),
      max: validation.max_disabled === true || validation.max === null || validation.max === undefined ? null : number(validation.max),
      monotonic: string(validation.monotonic),
      regex: string(validation.regex),
      error: string(validation.error),
    } : null,
    required: typeof defaultValue !== "string",
    order: number(values.order),
  });
}

function agentOf(resource: JsonResource): AgentDefinition {
  const values = resource.values ?? {};
  const scripts: ScriptDefinition[] = [];
  const base = { cron: "", log_path: "", icon: "", timeout: 0, run_on_start: false, run_on_stop: false, start_blocks_login: false };
  if (string(values.startup_script)) {
    scripts.push({ ...base, display_name: "startup_script", script: string(values.startup_script), run_on_start: true, start_blocks_login: values.startup_script_behavior === "blocking" });
  }
  if (string(values.shutdown_script)) scripts.push({ ...base, display_name: "shutdown_script", script: string(values.shutdown_script), run_on_stop: true });
  const env: Record<string, string> = {};
  if (values.env && typeof values.env === "object") for (const [key, value] of Object.entries(values.env)) if (typeof value === "string") env[key] = value;
  return {
    name: resource.name,
    address: resource.address,
    id: string(values.id) || null,
    os: string(values.os, "linux"),
    arch: string(values.arch, "amd64"),
    directory: string(values.dir),
    env,
    connection_timeout: number(values.connection_timeout, 120),
    motd_file: string(values.motd_file),
    troubleshooting_url: string(values.troubleshooting_url),
    order: number(values.order),
    scripts,
    metadata: list(values.metadata).map((item) => ({
      key: string(item.key), display_name: string(item.display_name) || string(item.key), script: string(item.script),
      interval: Math.max(1, number(item.interval, 10)), timeout: number(item.timeout, 5) || 5, order: number(item.order),
    })).sort((a, b) => a.order - b.order || a.key.localeCompare(b.key)),
    apps: [],
    ...(typeof values.token === "string" && values.token ? { token: values.token } : {}),
  };
}

function scriptOf(values: Record<string, unknown>): ScriptDefinition {
  return {
    display_name: string(values.display_name), script: string(values.script), run_on_start: boolean(values.run_on_start), run_on_stop: boolean(values.run_on_stop),
    start_blocks_login: boolean(values.start_blocks_login), timeout: number(values.timeout), cron: string(values.cron), log_path: string(values.log_path), icon: string(values.icon),
  };
}

function appOf(values: Record<string, unknown>): AppDefinition {
  const healthcheck = list(values.healthcheck)[0];
  return {
    slug: string(values.slug), display_name: string(values.display_name) || string(values.slug), url: string(values.url), command: string(values.command),
    icon: string(values.icon), external: boolean(values.external), subdomain: boolean(values.subdomain), share: string(values.share, "owner"),
    order: number(values.order), group: string(values.group), hidden: boolean(values.hidden), open_in: string(values.open_in, "slim-window"),
    healthcheck: healthcheck ? { url: string(healthcheck.url), interval: number(healthcheck.interval), threshold: number(healthcheck.threshold) } : null,
  };
}

/**
 * Reads what Coder's resources say from Terraform's JSON: parameters from `data.coder_parameter`, agents with
 * their scripts, apps and metadata, and the other resources with their `coder_metadata`.
 * `configuration` resolves references whose values are not known yet (a plan, before anything exists).
 */
export function extractSchema(input: { resources: JsonResource[]; configuration?: JsonConfigModule }): TemplateSchema {
  const references = referencesOf(input.configuration);
  /** The resource an attribute points at: by id when known, else by the configuration's reference. */
  const target = (resource: JsonResource, attribute: string, candidates: JsonResource[]): JsonResource | undefined => {
    const id = resource.values?.[attribute];
    if (typeof id === "string" && id) {
      const byId = candidates.find((candidate) => candidate.values?.id === id);
      if (byId) return byId;
    }
    const referenced = references.get(configAddress(resource.address))?.[attribute] ?? [];
    return candidates.find((candidate) => referenced.includes(configAddress(candidate.address)));
  };

  const parameters: TemplateParameter[] = [];
  const seenParameters = new Set<string>();
  for (const resource of input.resources) {
    if (resource.mode !== "data" || resource.type !== "coder_parameter" || !resource.values) continue;
    const parameter = parameterOf(resource.values);
    if (seenParameters.has(parameter.name)) continue;
    seenParameters.add(parameter.name);
    parameters.push(parameter);
  }
  parameters.sort((a, b) => a.order - b.order);

  const agentResources = input.resources.filter((resource) => resource.mode === "managed" && resource.type === "coder_agent");
  const agents = agentResources.map(agentOf);
  const agentFor = (resource: JsonResource) => {
    const found = target(resource, "agent_id", agentResources);
    return found ? agents[agentResources.indexOf(found)] : undefined;
  };
  for (const resource of input.resources) {
    if (resource.mode !== "managed" || !resource.values) continue;
    if (resource.type === "coder_script") agentFor(resource)?.scripts.push(scriptOf(resource.values));
    if (resource.type === "coder_app") agentFor(resource)?.apps.push(appOf(resource.values));
  }
  for (const agent of agents) agent.apps.sort((a, b) => a.order - b.order || a.slug.localeCompare(b.slug));
  agents.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));

  const coderTypes = new Set(["coder_agent", "coder_agent_instance", "coder_app", "coder_metadata", "coder_script", "coder_env", "coder_ai_task", "coder_devcontainer"]);
  const infrastructure = input.resources.filter((resource) => resource.mode === "managed" && !coderTypes.has(resource.type));
  const resources: WorkspaceResource[] = infrastructure.map((resource) => ({
    address: resource.address, type: resource.type, name: resource.name, hide: false, icon: "", daily_cost: 0, metadata: [],
    agents: agentResources.filter((agent) => (resource.depends_on ?? []).map(configAddress).includes(configAddress(agent.address)) ||
      (references.get(configAddress(resource.address)) && Object.values(references.get(configAddress(resource.address))!).flat().some((reference) => reference.startsWith(`${configAddress(agent.address)}.`) || reference === configAddress(agent.address))))
      .map((agent) => agent.name),
  }));
  for (const resource of input.resources) {
    if (resource.mode !== "managed" || resource.type !== "coder_metadata" || !resource.values) continue;
    const about = target(resource, "resource_id", infrastructure);
    const entry = about ? resources[infrastructure.indexOf(about)] : undefined;
    if (!entry) continue;
    entry.hide = boolean(resource.values.hide);
    entry.icon = string(resource.values.icon);
    entry.daily_cost = number(resource.values.daily_cost);
    entry.metadata = list(resource.values.item).map((item) => ({
      key: string(item.key),
      value: item.sensitive === true ? "" : string(item.value),
      sensitive: boolean(item.sensitive),
    }));
  }
  return { parameters, agents, resources };
}

/** Everything a plan knows: data sources read while planning, and the planned resources. */
export function schemaFromPlan(plan: JsonPlan): TemplateSchema {
  const planned = flatten(plan.planned_values?.root_module);
  const prior = flatten(plan.prior_state?.values?.root_module);
  const byAddress = new Map<string, JsonResource>();
  for (const resource of [...prior, ...planned]) byAddress.set(resource.address, resource);
  return extractSchema({ resources: [...byAddress.values()], configuration: plan.configuration?.root_module });
}

export function schemaFromState(state: JsonState): TemplateSchema {
  return extractSchema({ resources: flatten(state.values?.root_module) });
}

/** Terraform's own state file (format version 4), as stored with each build. */
export interface RawState {
  version?: number;
  resources?: {
    module?: string;
    mode: "managed" | "data";
    type: string;
    name: string;
    instances?: { index_key?: number | string; attributes?: Record<string, unknown>; dependencies?: string[] }[];
  }[];
}

/** Reads the resources straight from a state file, so a build needs no `terraform show`. */
export function schemaFromRawState(state: RawState): TemplateSchema {
  const resources: JsonResource[] = [];
  for (const resource of state.resources ?? []) {
    const base = `${resource.module ? `${resource.module}.` : ""}${resource.mode === "data" ? "data." : ""}${resource.type}.${resource.name}`;
    for (const instance of resource.instances ?? []) {
      const index = instance.index_key === undefined ? "" : `[${JSON.stringify(instance.index_key)}]`;
      resources.push({
        address: `${base}${index}`, mode: resource.mode, type: resource.type, name: resource.name,
        ...(instance.index_key === undefined ? {} : { index: instance.index_key }),
        values: instance.attributes ?? {}, depends_on: instance.dependencies ?? [],
      });
    }
  }
  return extractSchema({ resources });
}
