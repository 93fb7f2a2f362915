import { ProvisionError, type Provisioner, type ProvisionResult } from "@kiln/provisioner";
import { eq } from "drizzle-orm";
import * as Agents from "../agents/index.ts";
import * as AgentDuties from "../agents/duties.ts";
import { generateAgentToken, sha256 } from "../auth/tokens.ts";
import type { DatabaseHandle } from "../db/index.ts";
import { workspaceAgents, workspaceBuilds, workspaces } from "../db/schema.ts";
import type { JobHandler } from "../jobs/runner.ts";
import { buildTemplate } from "../templates/versions.ts";
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
    const { build, workspace, owner, template, version, previousState, previousParameters } = await loadBuild(db, workspaceId, job.id);
    const provisioner = deps.provisioners[template.kind];
    if (!provisioner) {
      throw new Error(template.kind === "terraform"
        ? "Terraform is not available on this server: build the pinned toolchain with `node provisioner/scripts/toolchain.mjs`, or set KILN_TERRAFORM_PATH"
        : `no provisioner for template kind '${template.kind}' is configured on this server`);
    }

    let agentToken: string | null = null;
    let agentId: string | null = null;
    if (build.transition === "start") {
      const generated = generateAgentToken();
      agentToken = generated.token;
      const { agent, revoked } = await db.transaction((transaction) => Agents.createForBuild(transaction, { workspaceId, buildId: build.id, tokenHash: generated.hash }));
      agentId = agent.id;
      deps.onAgentsRevoked(revoked);
    }
    context.log({ level: "info", stage: "build", output: `${build.transition} build #${build.buildNumber} of ${owner.username}/${workspace.name} with the ${provisioner.kind} provisioner` });

    let result: ProvisionResult;
    try {
      result = await provisioner.provision({
        workspace: { id: workspace.id, name: workspace.name, ownerName: owner.username, ownerEmail: owner.email },
        buildId: build.id,
        transition: build.transition,
        agentToken,
        accessUrl: deps.accessUrl,
        parameters: build.parameters as Record<string, string>,
        previousParameters,
        previousState,
        ...(template.kind === "terraform" ? { template: buildTemplate(template, version) } : {}),
        log: context.log,
        signal: context.signal,
      });
    } catch (error) {
      // What a failed build created is recorded, so the next build (a retry, or delete) starts from it.
      const state = error instanceof ProvisionError ? error.state : undefined;
      if (state !== undefined) await db.update(workspaceBuilds).set({ provisionerState: state ?? null }).where(eq(workspaceBuilds.id, build.id));
      // A daemon already started by this build must not wait for a configuration that will never come.
      if (agentId) await AgentDuties.setConfig(db, agentId, { config: AgentDuties.EMPTY_CONFIG }).catch(() => {});
      throw error;
    }

    const definition = result.agents?.[0];
    if (result.agents && result.agents.length > 1) {
      context.log({ level: "warn", stage: "build", output: `the build defines ${result.agents.length} agents; Kiln connects to '${definition!.name}' only` });
    }
    const revoked = await db.transaction(async (transaction) => {
      await transaction.update(workspaceBuilds).set({ provisionerState: result.state ?? null, resources: result.resources ?? null }).where(eq(workspaceBuilds.id, build.id));
      if (agentId) {
        await AgentDuties.setConfig(transaction, agentId, { name: definition?.name, config: AgentDuties.configOf(definition) });
        // A provider that ignores the token Kiln handed it mints its own; the daemon will present that one.
        if (definition?.token && agentToken && definition.token !== agentToken) {
          await transaction.update(workspaceAgents).set({ tokenHash: sha256(definition.token) }).where(eq(workspaceAgents.id, agentId));
          context.log({ level: "warn", stage: "build", output: "the Coder provider minted its own agent token; using it" });
        }
      }
      if (build.transition === "start") return [];
      const revokedIds = await Agents.revokeAll(transaction, workspaceId);
      if (build.transition === "delete") await transaction.update(workspaces).set({ deleted: true, updatedAt: new Date() }).where(eq(workspaces.id, workspaceId));
      return revokedIds;
    });
    deps.onAgentsRevoked(revoked);
    context.log({ level: "info", stage: "build", output: `${build.transition} build #${build.buildNumber} done` });
  };
}
