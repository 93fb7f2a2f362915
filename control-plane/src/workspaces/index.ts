import { and, asc, desc, eq, inArray, isNotNull, lt, or, sql } from "drizzle-orm";
import * as Agents from "../agents/index.ts";
import { isAdmin, type Actor } from "../auth/index.ts";
import type { Database, DatabaseHandle } from "../db/index.ts";
import { provisionerJobs, templates, templateVersions, users, workspaceAgents, workspaceBuilds, workspaces } from "../db/schema.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import * as Jobs from "../jobs/queue.ts";
import * as Templates from "../templates/index.ts";
import * as TemplateVersions from "../templates/versions.ts";
import { Terraform } from "@kiln/provisioner";

export type Workspace = typeof workspaces.$inferSelect;
export type Build = typeof workspaceBuilds.$inferSelect;
export type Transition = Build["transition"];
export type WorkspaceStatus = "pending" | "starting" | "running" | "stopping" | "stopped" | "failed" | "canceling" | "canceled" | "deleting" | "deleted";

export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Workspace status follows from the latest build's transition and its job's status, as in Coder. */
export function statusOf(transition: Transition, jobStatus: Jobs.JobStatus): WorkspaceStatus {
  switch (jobStatus) {
    case "pending": return "pending";
    case "running": return ({ start: "starting", stop: "stopping", delete: "deleting" } as const)[transition];
    case "succeeded": return ({ start: "running", stop: "stopped", delete: "deleted" } as const)[transition];
    case "failed": return "failed";
    case "canceling": return "canceling";
    case "canceled": return "canceled";
  }
}

export interface WorkspaceView {
  id: string;
  name: string;
  owner_id: string;
  owner_name: string;
  template_id: string;
  template_name: string;
  status: WorkspaceStatus;
  latest_build: {
    id: string;
    build_number: number;
    transition: Transition;
    job_id: string;
    job_status: Jobs.JobStatus;
    error: string | null;
    created_at: string;
    completed_at: string | null;
  } | null;
  agent: { id: string; lifecycle_state: Agents.LifecycleState; connected: boolean; version: string | null; directory: string | null } | null;
  created_at: string;
  updated_at: string;
}

export interface Connectivity {
  isConnected(agentId: string): boolean;
}

async function views(db: Database, connectivity: Connectivity, rows: { workspace: Workspace; ownerName: string; templateName: string }[]): Promise<WorkspaceView[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((row) => row.workspace.id);
  const builds = await db.selectDistinctOn([workspaceBuilds.workspaceId], { build: workspaceBuilds, job: provisionerJobs })
    .from(workspaceBuilds).innerJoin(provisionerJobs, eq(provisionerJobs.id, workspaceBuilds.jobId))
    .where(inArray(workspaceBuilds.workspaceId, ids))
    .orderBy(workspaceBuilds.workspaceId, desc(workspaceBuilds.buildNumber));
  const agents = await db.selectDistinctOn([workspaceAgents.workspaceId]).from(workspaceAgents)
    .where(inArray(workspaceAgents.workspaceId, ids))
    .orderBy(workspaceAgents.workspaceId, desc(workspaceAgents.createdAt));
  const buildBy = new Map(builds.map((row) => [row.build.workspaceId, row]));
  const agentBy = new Map(agents.map((agent) => [agent.workspaceId, agent]));
  return rows.map(({ workspace, ownerName, templateName }) => {
    const latest = buildBy.get(workspace.id);
    const agent = agentBy.get(workspace.id);
    return {
      id: workspace.id,
      name: workspace.name,
      owner_id: workspace.ownerId,
      owner_name: ownerName,
      template_id: workspace.templateId,
      template_name: templateName,
      status: latest ? statusOf(latest.build.transition, latest.job.status) : "pending",
      latest_build: latest ? {
        id: latest.build.id,
        build_number: latest.build.buildNumber,
        transition: latest.build.transition,
        job_id: latest.job.id,
        job_status: latest.job.status,
        error: latest.job.error,
        created_at: latest.build.createdAt.toISOString(),
        completed_at: latest.job.completedAt?.toISOString() ?? null,
      } : null,
      agent: agent ? {
        id: agent.id,
        lifecycle_state: agent.lifecycleState,
        connected: agent.tokenHash !== null && connectivity.isConnected(agent.id),
        version: agent.version,
        directory: agent.directory,
      } : null,
      created_at: workspace.createdAt.toISOString(),
      updated_at: workspace.updatedAt.toISOString(),
    };
  });
}

function baseQuery(db: Database) {
  return db.select({ workspace: workspaces, ownerName: users.username, templateName: templates.name })
    .from(workspaces).innerJoin(users, eq(users.id, workspaces.ownerId)).innerJoin(templates, eq(templates.id, workspaces.templateId));
}

export async function list(db: Database, connectivity: Connectivity, actor: Actor, options: { all?: boolean } = {}): Promise<WorkspaceView[]> {
  const conditions = [eq(workspaces.deleted, false)];
  if (!(options.all && isAdmin(actor))) conditions.push(eq(workspaces.ownerId, actor.user.id));
  const rows = await baseQuery(db).where(and(...conditions)).orderBy(asc(users.username), asc(workspaces.name));
  return views(db, connectivity, rows);
}

/**
 * Finds a workspace the actor may see: by id, by name among the actor's own, or `owner/name` for admins.
 * Someone else's workspace is reported as not found, not forbidden, so its existence does not leak.
 */
export async function find(db: Database, actor: Actor, reference: string): Promise<Workspace> {
  let condition;
  if (UUID.test(reference)) {
    condition = eq(workspaces.id, reference);
  } else if (reference.includes("/")) {
    const [ownerName, name] = reference.split("/", 2);
    const [owner] = await db.select({ id: users.id }).from(users).where(sql`lower(${users.username}) = lower(${ownerName})`);
    condition = and(eq(workspaces.ownerId, owner?.id ?? "00000000-0000-0000-0000-000000000000"), sql`lower(${workspaces.name}) = lower(${name})`);
  } else {
    condition = and(eq(workspaces.ownerId, actor.user.id), sql`lower(${workspaces.name}) = lower(${reference})`);
  }
  const [workspace] = await db.select().from(workspaces).where(and(condition, eq(workspaces.deleted, false))).limit(1);
  if (!workspace || (workspace.ownerId !== actor.user.id && !isAdmin(actor))) throw new NotFoundError("workspace", { workspace: reference });
  return workspace;
}

export async function get(db: Database, connectivity: Connectivity, actor: Actor, reference: string): Promise<WorkspaceView> {
  const workspace = await find(db, actor, reference);
  const rows = await baseQuery(db).where(eq(workspaces.id, workspace.id));
  return (await views(db, connectivity, rows))[0]!;
}

export async function create(
  database: DatabaseHandle,
  connectivity: Connectivity,
  actor: Actor,
  input: { name: string; template: string; parameters?: Record<string, string> },
): Promise<WorkspaceView> {
  if (!NAME_PATTERN.test(input.name)) {
    throw new ValidationError("invalid workspace name", { field: "name", reason: "use 1-32 lowercase letters, digits and dashes, starting and ending with a letter or digit" });
  }
  const template = await Templates.get(database.db, input.template).catch(() => {
    throw new ValidationError(`template '${input.template}' does not exist`, { field: "template", reason: "unknown template" });
  });
  const version = await Templates.activeVersion(database.db, template);
  await TemplateVersions.requireImported(database.db, version);
  // Refused here, with every problem named, before any job (let alone Terraform) runs.
  const parameters = resolveParameters(version, input.parameters ?? {});
  const { workspace, jobId } = await database.db.transaction(async (transaction) => {
    const [existing] = await transaction.select({ id: workspaces.id }).from(workspaces)
      .where(and(eq(workspaces.ownerId, actor.user.id), sql`lower(${workspaces.name}) = lower(${input.name})`, eq(workspaces.deleted, false)));
    if (existing) throw new ConflictError("workspace_exists", `you already have a workspace named '${input.name}'`, { field: "name" });
    const [workspace] = await transaction.insert(workspaces).values({ ownerId: actor.user.id, templateId: template.id, name: input.name }).returning();
    const job = await Jobs.enqueue(transaction, "workspace_build", { workspaceId: workspace!.id });
    await transaction.insert(workspaceBuilds).values({
      workspaceId: workspace!.id, buildNumber: 1, transition: "start", jobId: job.id,
      templateVersionId: version.id, initiatorId: actor.user.id, parameters,
    });
    return { workspace: workspace!, jobId: job.id };
  });
  await Jobs.wake(database, jobId);
  return get(database.db, connectivity, actor, workspace.id);
}

/** The values a build runs with, or a 400 naming each bad parameter and why. */
export function resolveParameters(version: Templates.TemplateVersion, given: Record<string, string>, previous?: Record<string, string>): Record<string, string> {
  const { values, problems } = Terraform.resolveParameters(version.parameters as Terraform.TemplateParameter[], given, { previous });
  if (problems.length > 0) {
    const summary = problems.map((problem) => `${problem.field} ${problem.reason}`).join("; ");
    throw new ValidationError(`invalid parameters: ${summary}`, { field: problems[0]!.field, reason: problems[0]!.reason, issues: problems });
  }
  return values;
}

/** Starts a new build of an existing workspace; refused while another build is in progress. A start may change mutable parameters. */
export async function transition(database: DatabaseHandle, connectivity: Connectivity, actor: Actor, reference: string, to: Transition, options: { parameters?: Record<string, string> } = {}): Promise<WorkspaceView> {
  if (options.parameters && Object.keys(options.parameters).length > 0 && to !== "start") {
    throw new ValidationError("parameters can only change on a start build", { field: "parameters", reason: `not allowed with transition '${to}'` });
  }
  const found = await find(database.db, actor, reference);
  const jobId = await database.db.transaction(async (transaction) => {
    await transaction.select({ id: workspaces.id }).from(workspaces).where(eq(workspaces.id, found.id)).for("update");
    const [latest] = await transaction.select({ build: workspaceBuilds, job: provisionerJobs }).from(workspaceBuilds)
      .innerJoin(provisionerJobs, eq(provisionerJobs.id, workspaceBuilds.jobId))
      .where(eq(workspaceBuilds.workspaceId, found.id)).orderBy(desc(workspaceBuilds.buildNumber)).limit(1);
    if (latest) {
      const status = statusOf(latest.build.transition, latest.job.status);
      if (["pending", "starting", "stopping", "deleting", "canceling"].includes(status)) {
        throw new ConflictError("build_in_progress", `workspace '${found.name}' is ${status}; wait for the build to finish or cancel it`, { status, build_number: latest.build.buildNumber });
      }
      if (to === "start" && status === "running") throw new ConflictError("already_running", `workspace '${found.name}' is already running`, { status });
      if (to === "stop" && status === "stopped") throw new ConflictError("already_stopped", `workspace '${found.name}' is already stopped`, { status });
    }
    const versionId = latest?.build.templateVersionId ?? (await Templates.activeVersion(transaction as unknown as Database, await Templates.get(transaction as unknown as Database, found.templateId))).id;
    const previous = (latest?.build.parameters ?? {}) as Record<string, string>;
    let parameters = previous;
    if (options.parameters && Object.keys(options.parameters).length > 0) {
      const [version] = await transaction.select().from(templateVersions).where(eq(templateVersions.id, versionId));
      parameters = resolveParameters(version!, options.parameters, previous);
    }
    const job = await Jobs.enqueue(transaction, "workspace_build", { workspaceId: found.id });
    await transaction.insert(workspaceBuilds).values({
      workspaceId: found.id, buildNumber: (latest?.build.buildNumber ?? 0) + 1, transition: to, jobId: job.id,
      templateVersionId: versionId, initiatorId: actor.user.id, parameters,
    });
    await transaction.update(workspaces).set({ updatedAt: new Date() }).where(eq(workspaces.id, found.id));
    return job.id;
  });
  await Jobs.wake(database, jobId);
  return get(database.db, connectivity, actor, found.id);
}

export async function cancelBuild(database: DatabaseHandle, connectivity: Connectivity, actor: Actor, reference: string): Promise<WorkspaceView> {
  const found = await find(database.db, actor, reference);
  const [latest] = await database.db.select().from(workspaceBuilds).where(eq(workspaceBuilds.workspaceId, found.id)).orderBy(desc(workspaceBuilds.buildNumber)).limit(1);
  if (!latest) throw new NotFoundError("build", { workspace: reference });
  const status = await Jobs.requestCancel(database, latest.jobId);
  if (status !== "canceled" && status !== "canceling") throw new ConflictError("build_not_active", "the latest build is not running", { job_status: status });
  return get(database.db, connectivity, actor, found.id);
}

/** The build a job belongs to, with the facts a provisioner needs. */
export async function loadBuild(db: Database, workspaceId: string, jobId: string) {
  const [row] = await db.select({ build: workspaceBuilds, workspace: workspaces, owner: users, template: templates })
    .from(workspaceBuilds)
    .innerJoin(workspaces, eq(workspaces.id, workspaceBuilds.workspaceId))
    .innerJoin(users, eq(users.id, workspaces.ownerId))
    .innerJoin(templates, eq(templates.id, workspaces.templateId))
    .where(and(eq(workspaceBuilds.workspaceId, workspaceId), eq(workspaceBuilds.jobId, jobId)));
  if (!row) throw new NotFoundError("build for job", { jobId });
  // A failed terraform build still records the state of what it created, so the next build starts from it.
  const [previous] = await db.select({ state: workspaceBuilds.provisionerState, parameters: workspaceBuilds.parameters }).from(workspaceBuilds)
    .innerJoin(provisionerJobs, eq(provisionerJobs.id, workspaceBuilds.jobId))
    .where(and(eq(workspaceBuilds.workspaceId, workspaceId), lt(workspaceBuilds.buildNumber, row.build.buildNumber),
      or(eq(provisionerJobs.status, "succeeded"), isNotNull(workspaceBuilds.provisionerState))))
    .orderBy(desc(workspaceBuilds.buildNumber)).limit(1);
  const [version] = await db.select().from(templateVersions).where(eq(templateVersions.id, row.build.templateVersionId));
  return { ...row, version: version!, previousState: previous?.state ?? null, previousParameters: (previous?.parameters ?? undefined) as Record<string, string> | undefined };
}

export async function buildByNumber(db: Database, workspaceId: string, buildNumber?: number): Promise<Build> {
  const condition = buildNumber === undefined ? eq(workspaceBuilds.workspaceId, workspaceId) : and(eq(workspaceBuilds.workspaceId, workspaceId), eq(workspaceBuilds.buildNumber, buildNumber));
  const [build] = await db.select().from(workspaceBuilds).where(condition).orderBy(desc(workspaceBuilds.buildNumber)).limit(1);
  if (!build) throw new NotFoundError("build", { workspace_id: workspaceId, build_number: buildNumber });
  return build;
}
