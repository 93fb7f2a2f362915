import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Terraform } from "@kiln/provisioner";

export const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const localTemplateDirectory = path.join(repositoryRoot, "terraform", "local");

/**
 * The pinned toolchain (provisioner/scripts/toolchain.mjs), or null. Tests that need it are skipped without
 * it, except in strict mode (CI), where a skip fails the run: there the toolchain is required.
 */
export function terraformToolchain(): Terraform.TerraformToolchain | null {
  const toolchain = Terraform.findToolchain();
  if (!toolchain && process.env.KILN_STRICT !== "1" && !existsSync(Terraform.toolchainManifest)) {
    console.warn("\n!!! Terraform toolchain not built: terraform tests are skipped. Run: node provisioner/scripts/toolchain.mjs !!!\n");
  }
  return toolchain;
}

/** A template directory's files as the push API takes them. */
export async function templateFiles(directory: string) {
  return Terraform.readTemplateDirectory(directory);
}

export function readText(file: string): string {
  return readFileSync(file, "utf8");
}
