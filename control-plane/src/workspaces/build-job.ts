import type { Provisioner } from "@kiln/provisioner";
import { eq } from "drizzle-orm";
import * as Agents from "../agents/index.ts";
import { generateAgentToken } from "../auth/tokens.ts";
import type { DatabaseHandle } from "../db/index.ts";
import { workspaceBuilds, workspaces } from "../db/schema.ts";
import type { JobHandler } from "../jobs/runner.ts";
import { loadBuild } from "./index.ts";

export interface BuildJobDeps {
  database: DatabaseHandle;
  provisioners: Record<string, Provisioner>;
  accessUrl: string;
  /** Called with agents whose tokens were just revoked, so their live connections can be cut. */
  onAgentsRevoked(agentIds: string[]): void;
}

/** Runs a workspace build: mints the build's agent token, hands the build to its provisioner, records the outcome. */
export function createBuildHandler(deps: BuildJobDeps): JobHandler {
  const { db } = deps.database;
  return async (job, context) => {
    const { workspaceId } = job.input as { workspaceId: string };
    const { build, workspace, owner, template, previousState } = await loadBuild(db, workspaceId, job.id);
    const provisioner = deps.provisioners[template.kind];
    if (!provisioner) throw new Error(`no provisioner for template kind '${template.kind}' is configured on this server`);

    let agentToken: string | null = null;
    if (build.transition === "start") {
      const generated = generateAgentToken();
      agentToken = generated.token;
      const { revoked } = await db.transaction((transaction) => Agents.createForBuild(transaction, { workspaceId, buildId: build.id, tokenHash: generated.hash }));
      deps.onAgentsRevoked(revoked);
    }
    context.log({ level: "info", stage: "build", output: `${build.transition} build #${build.buildNumber} of ${owner.username}/${workspace.name} with the ${provisioner.kind} provisioner` });

    const result = await provisioner.provision({
      workspace: { id: workspace.id, name: workspace.name, ownerName: owner.username, ownerEmail: owner.email },
      buildId: build.id,
      transition: build.transition,
      agentToken,
      accessUrl: deps.accessUrl,
      parameters: build.parameters as Record<string, string>,
      previousState,
      log: context.log,
      signal: context.signal,
    });

    const revoked = await db.transaction(async (transaction) => {
      await transaction.update(workspaceBuilds).set({ provisionerState: result.state ?? null }).where(eq(workspaceBuilds.id, build.id));
      if (build.transition === "start") return [];
      const revokedIds = await Agents.revokeAll(transaction, workspaceId);
      if (build.transition === "delete") await transaction.update(workspaces).set({ deleted: true, updatedAt: new Date() }).where(eq(workspaces.id, workspaceId));
      return revokedIds;
    });
    deps.onAgentsRevoked(revoked);
    context.log({ level: "info", stage: "build", output: `${build.transition} build #${build.buildNumber} done` });
  };
}
