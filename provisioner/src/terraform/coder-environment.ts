import { createHash } from "node:crypto";
import type { Transition } from "../types.ts";

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");

/** The Coder provider reads a parameter's value from CODER_PARAMETER_<sha256(name)> (provider/parameter.go). */
export const parameterVariable = (name: string) => `CODER_PARAMETER_${sha256(name)}`;
export const previousParameterVariable = (name: string) => `CODER_PARAMETER_PREVIOUS_${sha256(name)}`;

/**
 * The provider mints a random token for every coder_agent unless this variable holds one
 * (provider/agent.go, agentAuthToken, meant for prebuilds). Kiln sets it to the build's own token,
 * so `coder_agent.<name>.token` is the token Kiln issued and already stored hashed.
 */
export const AGENT_TOKEN_VARIABLE = `CODER_RUNNING_WORKSPACE_AGENT_TOKEN_${sha256("")}`;

/** Operating systems and architectures the provider accepts for coder_agent (`os`, `arch`). */
export const AGENT_PLATFORMS = ["linux_amd64", "linux_arm64", "linux_armv7", "darwin_amd64", "darwin_arm64", "windows_amd64", "windows_arm64"] as const;

export interface CoderFacts {
  accessUrl: string;
  transition: Transition;
  buildId: string;
  workspace: { id: string; name: string; ownerId?: string; ownerName: string; ownerEmail: string };
  template: { id: string; name: string; versionName: string };
  parameters: Record<string, string>;
  previousParameters?: Record<string, string>;
  agentToken: string | null;
  /** Init script per `<os>_<arch>`, with the provider's `${ACCESS_URL}` and `${AUTH_TYPE}` placeholders left in. */
  initScripts: Partial<Record<string, string>>;
}

/** The environment the Coder provider reads its facts from, exactly as coderd sets it. */
export function coderEnvironment(facts: CoderFacts): Record<string, string> {
  const environment: Record<string, string> = {
    CODER_AGENT_URL: facts.accessUrl,
    // coderd names the delete transition `destroy` (provisionersdk WorkspaceTransition).
    CODER_WORKSPACE_TRANSITION: facts.transition === "delete" ? "destroy" : facts.transition,
    CODER_WORKSPACE_BUILD_ID: facts.buildId,
    CODER_WORKSPACE_ID: facts.workspace.id,
    CODER_WORKSPACE_NAME: facts.workspace.name,
    CODER_WORKSPACE_OWNER: facts.workspace.ownerName,
    CODER_WORKSPACE_OWNER_NAME: facts.workspace.ownerName,
    CODER_WORKSPACE_OWNER_EMAIL: facts.workspace.ownerEmail,
    CODER_WORKSPACE_OWNER_LOGIN_TYPE: "password",
    CODER_WORKSPACE_OWNER_GROUPS: "[]",
    CODER_WORKSPACE_TEMPLATE_ID: facts.template.id,
    CODER_WORKSPACE_TEMPLATE_NAME: facts.template.name,
    CODER_WORKSPACE_TEMPLATE_VERSION: facts.template.versionName,
  };
  if (facts.workspace.ownerId) environment.CODER_WORKSPACE_OWNER_ID = facts.workspace.ownerId;
  for (const [name, value] of Object.entries(facts.parameters)) environment[parameterVariable(name)] = value;
  for (const [name, value] of Object.entries(facts.previousParameters ?? {})) environment[previousParameterVariable(name)] = value;
  if (facts.agentToken) environment[AGENT_TOKEN_VARIABLE] = facts.agentToken;
  for (const [platform, script] of Object.entries(facts.initScripts)) if (script) environment[`CODER_AGENT_SCRIPT_${platform}`] = script;
  return environment;
}
