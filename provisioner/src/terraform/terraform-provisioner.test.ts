import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ProvisionError, type ProvisionLog, type ProvisionRequest } from "../types.ts";
import { packFiles } from "./files.ts";
import { findToolchain, runTerraform } from "./terraform-cli.ts";
import { createTerraformProvisioner } from "./terraform-provisioner.ts";

const toolchain = findToolchain();

const MAIN_TF = `
terraform {
  required_providers {
    coder = { source = "coder/coder" }
  }
}
data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}
data "coder_parameter" "pause" {
  name    = "pause"
  type    = "number"
  default = "0"
  mutable = true
}
variable "out" { type = string }
resource "coder_agent" "dev" {
  os   = "linux"
  arch = "amd64"
}
resource "terraform_data" "facts" {
  count = data.coder_workspace.me.start_count
  triggers_replace = [coder_agent.dev.token]
  provisioner "local-exec" {
    command = "sleep $PAUSE; printf '%s\\n' \\"$FACTS\\" > $OUT"
    environment = {
      PAUSE = data.coder_parameter.pause.value
      OUT   = var.out
      FACTS = "\${data.coder_workspace.me.name} \${data.coder_workspace_owner.me.name} \${data.coder_workspace_owner.me.email} \${data.coder_workspace.me.transition} \${coder_agent.dev.token} \${coder_agent.dev.init_script}"
    }
  }
}
`;

/** The provisioner against real terraform and the real Coder provider, with a template that records what it saw. */
describe.skipIf(!toolchain)("terraform provisioner", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "kiln-tf-provisioner-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const out = path.join(root, "facts.txt");
  const files = [{ path: "main.tf", mode: 0o644, content: Buffer.from(MAIN_TF).toString("base64") }];
  const template = { id: "11111111-1111-4111-8111-111111111111", name: "facts", versionId: "v-1", versionName: "v1", files, variables: { out }, filesHash: packFiles(files).hash };
  const provisioner = createTerraformProvisioner({
    toolchain, workDirectory: path.join(root, "work"), environment: { PATH: process.env.PATH ?? "" },
    initScripts: async () => ({ linux_amd64: "boot ${ACCESS_URL} ${AUTH_TYPE}" }),
  });
  const request = (overrides: Partial<ProvisionRequest>): ProvisionRequest & { logs: ProvisionLog[] } => {
    const logs: ProvisionLog[] = [];
    return {
      workspace: { id: "22222222-2222-4222-8222-222222222222", name: "box", ownerName: "ada", ownerEmail: "ada@example.com" },
      buildId: `build-${Math.random().toString(16).slice(2)}`, transition: "start", agentToken: "kiln-agent_test", accessUrl: "http://127.0.0.1:7777",
      parameters: {}, previousState: null, template, log: (entry) => logs.push(entry), signal: new AbortController().signal, logs, ...overrides,
    };
  };

  it("hands the provider the workspace facts, the build's token and Kiln's init script; returns the state and agents", async () => {
    const result = await provisioner.provision(request({}));
    expect(readFileSync(out, "utf8")).toBe("box ada ada@example.com start kiln-agent_test boot http://127.0.0.1:7777/ token\n");
    expect(result.agents).toEqual([expect.objectContaining({ name: "dev", token: "kiln-agent_test" })]);
    expect(result.resources).toEqual([expect.objectContaining({ address: "terraform_data.facts[0]", agents: ["dev"] })]);
    expect(JSON.stringify(result.state)).toContain("terraform_data");

    const stopped = await provisioner.provision(request({ transition: "stop", agentToken: null, previousState: result.state }));
    expect(JSON.stringify(stopped.state)).not.toContain("terraform_data");
    const deleted = await provisioner.provision(request({ transition: "delete", agentToken: null, previousState: stopped.state }));
    expect(deleted.state).toBeNull();
  });

  it("interrupts terraform on cancel and keeps the state it wrote", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 1_500);
    const failure = await provisioner.provision(request({ parameters: { pause: "60" }, signal: controller.signal })).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ProvisionError);
    expect((failure as ProvisionError).message).toBe("terraform apply was interrupted");
    expect(JSON.stringify((failure as ProvisionError).state)).toContain("coder_agent");
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe.skipIf(!toolchain)("templates in terraform/", () => {
  it("are formatted (terraform fmt -check)", async () => {
    const lines: string[] = [];
    const directory = path.resolve(import.meta.dirname, "../../../terraform");
    const result = await runTerraform({ toolchain: toolchain!, args: ["fmt", "-check", "-recursive", "-list=true", "."], cwd: directory, env: { PATH: process.env.PATH ?? "" }, signal: new AbortController().signal, onLine: (_stream, line) => lines.push(line) });
    expect(lines).toEqual([]);
    expect(result.exitCode).toBe(0);
  });
});
