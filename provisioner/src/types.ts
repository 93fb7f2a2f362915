import type { AgentDefinition, WorkspaceResource } from "./terraform/resources.ts";
import type { TemplateFile } from "./terraform/files.ts";

export type Transition = "start" | "stop" | "delete";

export interface ProvisionLog {
  level: "debug" | "info" | "warn" | "error";
  stage: string;
  output: string;
}

/** Everything a provisioner needs to make one workspace build happen. */
export interface ProvisionRequest {
  workspace: { id: string; name: string; ownerName: string; ownerEmail: string };
  buildId: string;
  transition: Transition;
  /** The build's fresh agent token; only set for `start`. */
  agentToken: string | null;
  /** URL the workspace daemon dials. */
  accessUrl: string;
  parameters: Record<string, string>;
  /** State returned by this workspace's previous build, or null for the first. */
  previousState: unknown;
  /** Parameter values of the workspace's previous build (Coder's CODER_PARAMETER_PREVIOUS_*). */
  previousParameters?: Record<string, string>;
  /** The template version being built; the local provisioner ignores it. */
  template?: BuildTemplate;
  log(entry: ProvisionLog): void;
  signal: AbortSignal;
}

/** What a template-driven provisioner needs to know about the version a build runs. */
export interface BuildTemplate {
  id: string;
  name: string;
  versionId: string;
  versionName: string;
  files: TemplateFile[];
  /** Values for the module's `variable`s. */
  variables: Record<string, string>;
  /** Identifies the files, so work derived from them (an initialised module) can be reused. */
  filesHash: string;
}

export interface ProvisionResult {
  /** Kept with the build and handed to the next build of the same workspace. */
  state: unknown;
  /** Resources the build left, when the provisioner knows them (terraform). */
  resources?: WorkspaceResource[];
  /** Agents the build defines (terraform: coder_agent), with what their daemon must run. */
  agents?: AgentDefinition[];
}

export interface Provisioner {
  readonly kind: string;
  provision(request: ProvisionRequest): Promise<ProvisionResult>;
}

export class ProvisionError extends Error {
  override readonly name = "ProvisionError";
  constructor(message: string, readonly logTail?: string, readonly options: { state?: unknown } = {}) {
    super(message);
  }

  /** State left by a build that failed halfway (terraform writes it even then); undefined when unknown. */
  get state(): unknown {
    return this.options.state;
  }
}
