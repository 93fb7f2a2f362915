import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

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
  createdBy: uuid("created_by").references(() => users.id),
  createdAt: createdAt(),
}, (table) => [index("template_versions_template_idx").on(table.templateId)]);

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
  createdAt: createdAt(),
}, (table) => [
  uniqueIndex("workspace_agents_token_key").on(table.tokenHash),
  index("workspace_agents_workspace_idx").on(table.workspaceId),
]);
