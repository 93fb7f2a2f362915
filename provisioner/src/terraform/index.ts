export { createTerraformProvisioner, presentJsonLine, type ImportRequest, type TerraformProvisioner, type TerraformProvisionerOptions } from "./terraform-provisioner.ts";
export { findToolchain, runTerraform, toolchainManifest, type TerraformToolchain } from "./terraform-cli.ts";
export { TemplateParameter, checkValue, resolveParameters, type ParameterProblem } from "./parameters.ts";
export { TemplateFile, LIMITS as TEMPLATE_LIMITS, isIgnored, packFiles, pathProblem, readTemplateDirectory, unpackFiles, writeTemplateFiles } from "./files.ts";
export { AGENT_PLATFORMS, AGENT_TOKEN_VARIABLE, coderEnvironment, parameterVariable } from "./coder-environment.ts";
export { schemaFromPlan, schemaFromRawState, type AgentDefinition, type AppDefinition, type MetadataDefinition, type ScriptDefinition, type TemplateSchema, type WorkspaceResource } from "./resources.ts";
