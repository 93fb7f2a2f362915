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
  log(entry: ProvisionLog): void;
  signal: AbortSignal;
}

export interface ProvisionResult {
  /** Kept with the build and handed to the next build of the same workspace. */
  state: unknown;
}

export interface Provisioner {
  readonly kind: string;
  provision(request: ProvisionRequest): Promise<ProvisionResult>;
}

export class ProvisionError extends Error {
  override readonly name = "ProvisionError";
  constructor(message: string, readonly logTail?: string) {
    super(message);
  }
}
