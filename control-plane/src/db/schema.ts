import { sql } from "drizzle-orm";
import {
  bigint,
  customType,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/** Raw bytes (Postgres bytea) as Node Buffers. */
const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array | string }>({
  dataType: () => "bytea",
  toDriver: (value) => value,
  fromDriver: (value) => (typeof value === "string" ? Buffer.from(value.replace(/^\\x/, ""), "hex") : Buffer.from(value)),
});

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

export const users = pgTable("users", {
  id: uuid("id").primaryKey().defaultRandom(),
  email: text("email").notNull(),
  username: text("username").notNull(),
  passwordHash: text("password_hash").notNull(),
  role: text("role", { enum: ["owner", "admin", "member"] }).notNull().default("member"),
  suspended: boolean("suspended").notNull().default(false),
  createdAt: createdAt(),
}, (table) => [
  uniqueIndex("users_email_key").on(sql`lower(${table.email})`),
  uniqueIndex("users_username_key").on(sql`lower(${table.username})`),
]);

/** Session and API tokens. The secret is only ever stored as a SHA-256 hash. */
export const apiTokens = pgTable("api_tokens", {
  id: text("id").primaryKey(),
  userId: uuid("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  kind: text("kind", { enum: ["session", "api"] }).notNull(),
  name: text("name").notNull().default(""),
  secretHash: text("secret_hash").notNull(),
  createdAt: createdAt(),
  lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
  expiresAt: timestamp("expires_at", { withTimezone: true }),
  revokedAt: timestamp("revoked_at", { withTimezone: true }),
}, (table) => [index("api_tokens_user_idx").on(table.userId)]);

export const templates = pgTable("templates", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull(),
  displayName: text("display_name").notNull().default(""),
  description: text("description").notNull().default(""),
  kind: text("kind", { enum: ["local", "terraform"] }).notNull(),
  activeVersionId: uuid("active_version_id"),
  createdBy: uuid("created_by").references(() => users.id),
  createdAt: createdAt(),
  deleted: boolean("deleted").notNull().default(false),
}, (table) => [uniqueIndex("templates_name_key").on(sql`lower(${table.name})`).where(sql`NOT ${table.deleted}`)]);

export const templateVersions = pgTable("template_versions", {
  id: uuid("id").primaryKey().defaultRandom(),
  templateId: uuid("template_id").notNull().references(() => templates.id, { onDelete: "cascade" }),
  name: text("name").notNull(),
  /** Template parameters as extracted at import (coder_parameter); [] for local templates. */
  parameters: jsonb("parameters").notNull().default([]),
  /** Why this version exists, as given at push. */
  message: text("message").notNull().default(""),
  /** The template_import job that validated this version; null for built-in versions. */
  jobId: uuid("job_id").references(() => provisionerJobs.id),
  /** The version's files (Terraform module): gzip of a JSON array of { path, mode, content (base64) }. */
  archive: bytea("archive"),
  /** SHA-256 of the archive, so pushing unchanged files can be recognised. */
  archiveHash: text("archive_hash"),
  /** Values for the module's Terraform `variable`s, set at push (Coder's template variables). */
  variables: jsonb("variables").notNull().default({}),
  /** coder_agent resources found at import, with their scripts, apps and metadata definitions. */
  agents: jsonb("agents").notNull().default([]),
  /** Infrastructure resources found at import, with their coder_metadata. */
  resources: jsonb("resources").notNull().default([]),
  createdBy: uuid("created_by").references(() => users.id),
  createdAt: createdAt(),
}, (table) => [
  index("template_versions_template_idx").on(table.templateId),
  uniqueIndex("template_versions_name_key").on(table.templateId, sql`lower(${table.name})`),
]);

export const workspaces = pgTable("workspaces", {
  id: uuid("id").primaryKey().defaultRandom(),
  ownerId: uuid("owner_id").notNull().references(() => users.id),
  templateId: uuid("template_id").notNull().references(() => templates.id),
  name: text("name").notNull(),
  createdAt: createdAt(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  deleted: boolean("deleted").notNull().default(false),
}, (table) => [
  uniqueIndex("workspaces_owner_name_key").on(table.ownerId, sql`lower(${table.name})`).where(sql`NOT ${table.deleted}`),
]);

export const provisionerJobs = pgTable("provisioner_jobs", {
  id: uuid("id").primaryKey().defaultRandom(),
  type: text("type", { enum: ["workspace_build", "template_import"] }).notNull(),
  status: text("status", { enum: ["pending", "running", "succeeded", "canceling", "canceled", "failed"] }).notNull().default("pending"),
  input: jsonb("input").notNull().default({}),
  workerId: text("worker_id"),
  leaseExpiresAt: timestamp("lease_expires_at", { withTimezone: true }),
  attempts: integer("attempts").notNull().default(0),
  error: text("error"),
  createdAt: createdAt(),
  startedAt: timestamp("started_at", { withTimezone: true }),
  completedAt: timestamp("completed_at", { withTimezone: true }),
}, (table) => [index("provisioner_jobs_claim_idx").on(table.status, table.createdAt)]);

export const provisionerJobLogs = pgTable("provisioner_job_logs", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  jobId: uuid("job_id").notNull().references(() => provisionerJobs.id, { onDelete: "cascade" }),
  createdAt: createdAt(),
  level: text("level", { enum: ["debug", "info", "warn", "error"] }).notNull().default("info"),
  stage: text("stage").notNull().default(""),
  output: text("output").notNull(),
}, (table) => [index("provisioner_job_logs_job_idx").on(table.jobId, table.id)]);

export const workspaceBuilds = pgTable("workspace_builds", {
  id: uuid("id").primaryKey().defaultRandom(),
  workspaceId: uuid("workspace_id").notNull().references(() => workspaces.id, { onDelete: "cascade" }),
  buildNumber: integer("build_number").notNull(),
  transition: text("transition", { enum: ["start", "stop", "delete"] }).notNull(),
  jobId: uuid("job_id").notNull().references(() => provisionerJobs.id),
  templateVersionId: uuid("template_version_id").notNull().references(() => templateVersions.id),
  initiatorId: uuid("initiator_id").notNull().references(() => users.id),
  parameters: jsonb("parameters").notNull().default({}),
  /** Opaque state the provisioner hands back (local: daemon pid; terraform: tfstate). */
  provisionerState: jsonb("provisioner_state"),
  /** Resources the build left (terraform: from the state), with their coder_metadata and agents. */
  resources: jsonb("resources"),
  createdAt: createdAt(),
}, (table) => [uniqueIndex("workspace_builds_number_key").on(table.workspaceId, table.buildNumber)]);

export const workspaceAgents = pgTable("workspace_agents", {
  id: uuid("id").primaryKey().defaultRandom(),
  workspaceId: uuid("workspace_id").notNull().references(() => workspaces.id, { onDelete: "cascade" }),
  buildId: uuid("build_id").notNull().references(() => workspaceBuilds.id, { onDelete: "cascade" }),
  name: text("name").notNull().default("main"),
  /** SHA-256 of the build's agent token; null once revoked (a newer build or deletion). */
  tokenHash: text("token_hash"),
  lifecycleState: text("lifecycle_state", {
    enum: ["created", "starting", "start_timeout", "start_error", "ready", "shutting_down", "shutdown_timeout", "shutdown_error", "off"],
  }).notNull().default("created"),
  connectedAt: timestamp("connected_at", { withTimezone: true }),
  disconnectedAt: timestamp("disconnected_at", { withTimezone: true }),
  lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
  version: text("version"),
  operatingSystem: text("operating_system"),
  architecture: text("architecture"),
  directory: text("directory"),
  /**
   * What the daemon runs (startup/shutdown scripts, metadata, environment), from the build's coder_agent.
   * Null until the build has recorded it; the daemon waits for it before running scripts.
   */
  config: jsonb("config"),
  /** When the lifecycle last moved to `starting` and to `ready`. */
  startedAt: timestamp("started_at", { withTimezone: true }),
  readyAt: timestamp("ready_at", { withTimezone: true }),
  /** Where the daemon serves its API on the tailnet, as it last reported it; null on the relay only. */
  tailnetAddress: text("tailnet_address"),
  tailnetPort: integer("tailnet_port"),
  /** Where it serves SSH for its owner's devices on the tailnet. */
  tailnetSshPort: integer("tailnet_ssh_port"),
  /** Why the daemon could not join the tailnet, as it last reported it (cleared when it joins). */
  tailnetError: text("tailnet_error"),
  tailnetJoinedAt: timestamp("tailnet_joined_at", { withTimezone: true }),
  createdAt: createdAt(),
}, (table) => [
  uniqueIndex("workspace_agents_token_key").on(table.tokenHash),
  index("workspace_agents_workspace_idx").on(table.workspaceId),
]);

/** Output of the agent's startup, shutdown and cron scripts, as the daemon reports it. */
export const workspaceAgentLogs = pgTable("workspace_agent_logs", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  agentId: uuid("agent_id").notNull().references(() => workspaceAgents.id, { onDelete: "cascade" }),
  /** The script's display name, or `agent` for the daemon's own messages. */
  source: text("source").notNull(),
  level: text("level", { enum: ["debug", "info", "warn", "error"] }).notNull().default("info"),
  output: text("output").notNull(),
  createdAt: createdAt(),
}, (table) => [index("workspace_agent_logs_agent_idx").on(table.agentId, table.id)]);

/** Latest value of each coder_agent metadata item, collected by the daemon at its interval. */
export const workspaceAgentMetadata = pgTable("workspace_agent_metadata", {
  agentId: uuid("agent_id").notNull().references(() => workspaceAgents.id, { onDelete: "cascade" }),
  key: text("key").notNull(),
  value: text("value").notNull().default(""),
  error: text("error"),
  collectedAt: timestamp("collected_at", { withTimezone: true }).notNull(),
}, (table) => [primaryKey({ columns: [table.agentId, table.key] })]);

/** One run of a script: when, how long, and how it ended. */
export const workspaceAgentScriptRuns = pgTable("workspace_agent_script_runs", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  agentId: uuid("agent_id").notNull().references(() => workspaceAgents.id, { onDelete: "cascade" }),
  script: text("script").notNull(),
  stage: text("stage", { enum: ["start", "stop", "cron"] }).notNull(),
  status: text("status", { enum: ["ok", "exit_failure", "timed_out", "start_failure"] }).notNull(),
  exitCode: integer("exit_code"),
  startedAt: timestamp("started_at", { withTimezone: true }).notNull(),
  endedAt: timestamp("ended_at", { withTimezone: true }).notNull(),
}, (table) => [index("workspace_agent_script_runs_agent_idx").on(table.agentId, table.id)]);

// ── Agent chats ────────────────────────────────────────────────────────────────

export const providers = pgTable("llm_providers", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull(),
  type: text("type", { enum: ["anthropic", "openai", "azure-openai", "openai-compatible", "google", "bedrock"] }).notNull(),
  baseUrl: text("base_url"),
  /** Non-secret settings: Azure api version/deployment, Bedrock region. */
  settings: jsonb("settings").notNull().default({}),
  /** API key (or AWS secret) sealed with AES-256-GCM under the server key; never returned by the API. */
  secretCiphertext: text("secret_ciphertext"),
  enabled: boolean("enabled").notNull().default(true),
  createdAt: createdAt(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
}, (table) => [uniqueIndex("llm_providers_name_key").on(sql`lower(${table.name})`)]);

export const models = pgTable("llm_models", {
  id: uuid("id").primaryKey().defaultRandom(),
  providerId: uuid("provider_id").notNull().references(() => providers.id, { onDelete: "cascade" }),
  /** The provider's model id, e.g. claude-sonnet-4-5. */
  model: text("model").notNull(),
  displayName: text("display_name").notNull().default(""),
  enabled: boolean("enabled").notNull().default(true),
  isDefault: boolean("is_default").notNull().default(false),
  contextWindow: integer("context_window").notNull().default(200_000),
  /** Percent of the context window that triggers compaction; 100 disables it. */
  compactionThreshold: integer("compaction_threshold").notNull().default(70),
  maxOutputTokens: integer("max_output_tokens").notNull().default(8192),
  createdAt: createdAt(),
}, (table) => [uniqueIndex("llm_models_provider_model_key").on(table.providerId, table.model)]);

/** Deployment-wide settings (system prompt, tool policy) as JSON values. */
export const settings = pgTable("settings", {
  key: text("key").primaryKey(),
  value: jsonb("value").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

export const chats = pgTable("chats", {
  id: uuid("id").primaryKey().defaultRandom(),
  ownerId: uuid("owner_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  workspaceId: uuid("workspace_id").references(() => workspaces.id, { onDelete: "set null" }),
  parentChatId: uuid("parent_chat_id"),
  rootChatId: uuid("root_chat_id"),
  title: text("title").notNull().default(""),
  status: text("status", { enum: ["pending", "running", "waiting", "error", "requires_action"] }).notNull().default("waiting"),
  modelId: uuid("model_id").references(() => models.id, { onDelete: "set null" }),
  workerId: text("worker_id"),
  leaseExpiresAt: timestamp("lease_expires_at", { withTimezone: true }),
  interruptRequested: boolean("interrupt_requested").notNull().default(false),
  lastError: text("last_error"),
  archived: boolean("archived").notNull().default(false),
  createdAt: createdAt(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
}, (table) => [
  index("chats_claim_idx").on(table.status, table.updatedAt),
  index("chats_owner_idx").on(table.ownerId, table.updatedAt),
  index("chats_parent_idx").on(table.parentChatId),
]);

export const chatMessages = pgTable("chat_messages", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  chatId: uuid("chat_id").notNull().references(() => chats.id, { onDelete: "cascade" }),
  role: text("role", { enum: ["system", "user", "assistant", "tool"] }).notNull(),
  /** Typed parts: text, reasoning, tool-call, tool-result, file. */
  parts: jsonb("parts").notNull(),
  usage: jsonb("usage"),
  /** A compaction summary: it replaces every earlier message in the model's context. */
  compressed: boolean("compressed").notNull().default(false),
  visibility: text("visibility", { enum: ["user", "model", "both"] }).notNull().default("both"),
  modelId: uuid("model_id"),
  createdBy: uuid("created_by"),
  createdAt: createdAt(),
}, (table) => [index("chat_messages_chat_idx").on(table.chatId, table.id)]);

export const chatQueuedMessages = pgTable("chat_queued_messages", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  chatId: uuid("chat_id").notNull().references(() => chats.id, { onDelete: "cascade" }),
  parts: jsonb("parts").notNull(),
  /** Lower goes first; promote moves a message to the front. */
  position: integer("position").notNull(),
  createdBy: uuid("created_by"),
  createdAt: createdAt(),
}, (table) => [index("chat_queued_messages_chat_idx").on(table.chatId, table.position)]);

/**
 * Tool calls with their idempotency state, so a turn resumed after a crash neither loses
 * a finished result nor runs a side-effecting call twice.
 */
export const chatToolCalls = pgTable("chat_tool_calls", {
  chatId: uuid("chat_id").notNull().references(() => chats.id, { onDelete: "cascade" }),
  toolCallId: text("tool_call_id").notNull(),
  messageId: bigint("message_id", { mode: "number" }).notNull(),
  toolName: text("tool_name").notNull(),
  input: jsonb("input").notNull(),
  status: text("status", { enum: ["pending_approval", "approved", "denied", "running", "done"] }).notNull(),
  result: jsonb("result"),
  createdAt: createdAt(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
}, (table) => [primaryKey({ columns: [table.chatId, table.toolCallId] })]);
