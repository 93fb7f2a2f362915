import { Terraform, type BuildTemplate } from "@kiln/provisioner";
import { and, desc, eq, sql } from "drizzle-orm";
import { requireAdmin, type Actor } from "../auth/index.ts";
import type { Database, DatabaseHandle } from "../db/index.ts";
import { provisionerJobs, templates, templateVersions, users } from "../db/schema.ts";
import { ConflictError, KilnError, NotFoundError, ValidationError } from "../errors.ts";
import * as Jobs from "../jobs/queue.ts";
import type { JobHandler } from "../jobs/runner.ts";
import { get, type Template, type TemplateVersion } from "./index.ts";

const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$/;
const VERSION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface PushInput {
  template: string;
  files: Terraform.TemplateFile[];
  name?: string;
  message?: string;
  variables?: Record<string, string>;
  /** Make the version active once its import succeeds (default true). */
  activate?: boolean;
  display_name?: string;
  description?: string;
}

/** A version's import status follows its job's. */
export type VersionStatus = "pending" | "running" | "succeeded" | "failed" | "canceled";

function checkFiles(files: Terraform.TemplateFile[]): void {
  if (files.length === 0) throw new ValidationError("a template version needs files", { field: "files", reason: "empty" });
  if (files.length > Terraform.TEMPLATE_LIMITS.maxFiles) throw new ValidationError(`at most ${Terraform.TEMPLATE_LIMITS.maxFiles} files`, { field: "files", reason: "too many files" });
  let total = 0;
  const seen = new Set<string>();
  for (const [index, file] of files.entries()) {
    const problem = Terraform.pathProblem(file.path);
    if (problem) throw new ValidationError(`file ${JSON.stringify(file.path)}: ${problem}`, { field: `files.${index}.path`, reason: problem });
    if (seen.has(file.path)) throw new ValidationError(`file ${JSON.stringify(file.path)} appears twice`, { field: `files.${index}.path`, reason: "duplicate" });
    seen.add(file.path);
    total += Buffer.byteLength(file.content, "base64");
  }
  if (total > Terraform.TEMPLATE_LIMITS.maxBytes) throw new ValidationError(`template files exceed ${Terraform.TEMPLATE_LIMITS.maxBytes / 1024 / 1024} MiB`, { field: "files", reason: "too large" });
  if (!files.some((file) => /^[^/]+\.tf(\.json)?$/.test(file.path))) {
    throw new ValidationError("a template needs a Terraform file (*.tf) at its top level", { field: "files", reason: "no .tf file at the top level" });
  }
}

/**
 * Uploads a new, immutable version of a terraform template (creating the template on first push) and
 * queues its import: `terraform init` + `plan` to find its parameters, agents, apps, scripts and metadata.
 */
export async function push(database: DatabaseHandle, actor: Actor, input: PushInput): Promise<{ template: Template; version: TemplateVersion; jobId: string }> {
  requireAdmin(actor);
  if (!NAME_PATTERN.test(input.template)) {
    throw new ValidationError("invalid template name", { field: "template", reason: "use 1-64 lowercase letters, digits, '-' and '_', starting and ending with a letter or digit" });
  }
  if (input.name !== undefined && !VERSION_NAME_PATTERN.test(input.name)) {
    throw new ValidationError("invalid version name", { field: "name", reason: "1-64 letters, digits, '.', '_', '+' or '-'" });
  }
  for (const name of Object.keys(input.variables ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) throw new ValidationError(`invalid variable name ${JSON.stringify(name)}`, { field: `variables.${name}`, reason: "not a Terraform identifier" });
  }
  // Terraform's working data, state and lock file are never part of a version, whoever uploads them.
  const files = input.files.filter((file) => !Terraform.isIgnored(file.path));
  checkFiles(files);
  const { archive, hash } = Terraform.packFiles(files);
  const result = await database.db.transaction(async (transaction) => {
    await transaction.execute(sql`SELECT pg_advisory_xact_lock(7341131, hashtext(lower(${input.template})))`);
    let [template] = await transaction.select().from(templates).where(and(sql`lower(${templates.name}) = lower(${input.template})`, eq(templates.deleted, false)));
    if (template && template.kind !== "terraform") {
      throw new ConflictError("template_kind", `template '${template.name}' is a built-in ${template.kind} template; push to another name`, { kind: template.kind });
    }
    if (!template) {
      [template] = await transaction.insert(templates).values({
        name: input.template, kind: "terraform", displayName: input.display_name ?? "", description: input.description ?? "", createdBy: actor.user.id,
      }).returning();
    } else if (input.display_name !== undefined || input.description !== undefined) {
      [template] = await transaction.update(templates).set({
        ...(input.display_name !== undefined ? { displayName: input.display_name } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
      }).where(eq(templates.id, template.id)).returning();
    }
    const [{ count } = { count: 0 }] = await transaction.select({ count: sql<number>`count(*)::int` }).from(templateVersions).where(eq(templateVersions.templateId, template!.id));
    const name = input.name ?? `v${count + 1}`;
    const [clash] = await transaction.select({ id: templateVersions.id }).from(templateVersions)
      .where(and(eq(templateVersions.templateId, template!.id), sql`lower(${templateVersions.name}) = lower(${name})`));
    if (clash) throw new ConflictError("version_exists", `template '${template!.name}' already has a version named '${name}'`, { field: "name" });
    const job = await Jobs.enqueue(transaction, "template_import", { activate: input.activate ?? true });
    const [version] = await transaction.insert(templateVersions).values({
      templateId: template!.id, name, message: input.message ?? "", jobId: job.id, archive, archiveHash: hash,
      variables: input.variables ?? {}, createdBy: actor.user.id,
    }).returning();
    await transaction.update(provisionerJobs).set({ input: { templateVersionId: version!.id, activate: input.activate ?? true } }).where(eq(provisionerJobs.id, job.id));
    return { template: template!, version: version!, jobId: job.id };
  });
  await Jobs.wake(database, result.jobId);
  return result;
}

export interface VersionView {
  id: string;
  template_id: string;
  name: string;
  message: string;
  status: VersionStatus;
  active: boolean;
  job_id: string | null;
  error: string | null;
  created_by: string | null;
  created_at: string;
  parameters: Terraform.TemplateParameter[];
  agents: Record<string, unknown>[];
  resources: Record<string, unknown>[];
  variables: string[];
}

function statusOf(job: { status: Jobs.JobStatus } | null): VersionStatus {
  if (!job) return "succeeded";
  return job.status === "canceling" ? "running" : job.status;
}

function view(template: Template, row: { version: TemplateVersion; job: typeof provisionerJobs.$inferSelect | null; creator: string | null }): VersionView {
  return {
    id: row.version.id,
    template_id: row.version.templateId,
    name: row.version.name,
    message: row.version.message,
    status: statusOf(row.job),
    active: template.activeVersionId === row.version.id,
    job_id: row.version.jobId,
    error: row.job?.error ?? null,
    created_by: row.creator,
    created_at: row.version.createdAt.toISOString(),
    parameters: row.version.parameters as Terraform.TemplateParameter[],
    agents: row.version.agents as Record<string, unknown>[],
    resources: row.version.resources as Record<string, unknown>[],
    variables: Object.keys(row.version.variables as Record<string, string>),
  };
}

function versionQuery(db: Database) {
  return db.select({ version: templateVersions, job: provisionerJobs, creator: users.username }).from(templateVersions)
    .leftJoin(provisionerJobs, eq(provisionerJobs.id, templateVersions.jobId))
    .leftJoin(users, eq(users.id, templateVersions.createdBy));
}

export async function list(db: Database, templateReference: string): Promise<VersionView[]> {
  const template = await get(db, templateReference);
  const rows = await versionQuery(db).where(eq(templateVersions.templateId, template.id)).orderBy(desc(templateVersions.createdAt));
  return rows.map((row) => view(template, row));
}

export async function find(db: Database, templateReference: string, versionReference: string): Promise<{ template: Template; version: VersionView; row: TemplateVersion }> {
  const template = await get(db, templateReference);
  const condition = versionReference === "active"
    ? eq(templateVersions.id, template.activeVersionId ?? "00000000-0000-0000-0000-000000000000")
    : UUID.test(versionReference) ? eq(templateVersions.id, versionReference) : sql`lower(${templateVersions.name}) = lower(${versionReference})`;
  const [row] = await versionQuery(db).where(and(eq(templateVersions.templateId, template.id), condition)).limit(1);
  if (!row) throw new NotFoundError("template version", { template: template.name, version: versionReference });
  return { template, version: view(template, row), row: row.version };
}

/** Makes a version the one new workspaces are built from; only a version whose import succeeded qualifies. */
export async function promote(db: Database, actor: Actor, templateReference: string, versionReference: string): Promise<VersionView> {
  requireAdmin(actor);
  const { template, version } = await find(db, templateReference, versionReference);
  if (version.status !== "succeeded") {
    throw new ConflictError("version_not_imported", `version '${version.name}' cannot be promoted: its import ${version.status === "failed" ? "failed" : "has not finished"}`, { status: version.status, error: version.error });
  }
  await db.update(templates).set({ activeVersionId: version.id }).where(eq(templates.id, template.id));
  return { ...version, active: true };
}

/** The version's import must have succeeded before anything is built from it. */
export async function requireImported(db: Database, version: TemplateVersion): Promise<void> {
  if (!version.jobId) return;
  const [job] = await db.select({ status: provisionerJobs.status, error: provisionerJobs.error }).from(provisionerJobs).where(eq(provisionerJobs.id, version.jobId));
  if (job?.status !== "succeeded") {
    throw new KilnError("version_not_imported", `template version '${version.name}' is not usable: its import ${job?.status === "failed" ? `failed: ${job.error}` : "has not finished"}`, 409);
  }
}

/** What a terraform build needs from its version. */
export function buildTemplate(template: Template, version: TemplateVersion): BuildTemplate {
  if (!version.archive) throw new Error(`template version ${version.name} has no files`);
  return {
    id: template.id, name: template.name, versionId: version.id, versionName: version.name,
    files: Terraform.unpackFiles(version.archive), variables: version.variables as Record<string, string>, filesHash: version.archiveHash ?? version.id,
  };
}

/** The template_import job: init + plan with the terraform provisioner, then record what was found. */
export function createImportHandler(deps: { database: DatabaseHandle; provisioner: Terraform.TerraformProvisioner; accessUrl: string }): JobHandler {
  const { db } = deps.database;
  return async (job, context) => {
    const { templateVersionId, activate } = job.input as { templateVersionId: string; activate?: boolean };
    const [row] = await db.select({ version: templateVersions, template: templates }).from(templateVersions)
      .innerJoin(templates, eq(templates.id, templateVersions.templateId)).where(eq(templateVersions.id, templateVersionId));
    if (!row) throw new Error(`template version ${templateVersionId} no longer exists`);
    context.log({ level: "info", stage: "import", output: `importing ${row.template.name} version ${row.version.name}` });
    const schema = await deps.provisioner.importTemplate({
      template: buildTemplate(row.template, row.version), accessUrl: deps.accessUrl, log: context.log, signal: context.signal,
    });
    if (schema.agents.length > 1) {
      context.log({ level: "warn", stage: "import", output: `the template defines ${schema.agents.length} agents (${schema.agents.map((agent) => agent.name).join(", ")}); Kiln connects to the first one, '${schema.agents[0]!.name}'` });
    }
    await db.transaction(async (transaction) => {
      await transaction.update(templateVersions).set({ parameters: schema.parameters, agents: schema.agents, resources: schema.resources }).where(eq(templateVersions.id, templateVersionId));
      if (activate !== false) await transaction.update(templates).set({ activeVersionId: templateVersionId }).where(eq(templates.id, row.template.id));
    });
    for (const parameter of schema.parameters) {
      context.log({ level: "info", stage: "import", output: `parameter ${parameter.name} (${parameter.type}${parameter.required ? ", required" : `, default ${JSON.stringify(parameter.default)}`}${parameter.mutable ? ", mutable" : ""})` });
    }
  };
}

