export * from "./types.ts";
export { createLocalProvisioner, LocalState, type LocalProvisionerOptions } from "./local/local-provisioner.ts";
export * as Terraform from "./terraform/index.ts";
