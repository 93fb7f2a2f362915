import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, cp, link, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { ProvisionError, type BuildTemplate, type ProvisionLog, type ProvisionRequest, type ProvisionResult, type Provisioner } from "../types.ts";
import { coderEnvironment } from "./coder-environment.ts";
import { writeTemplateFiles } from "./files.ts";
import { schemaFromPlan, schemaFromRawState, type JsonPlan, type RawState, type TemplateSchema } from "./resources.ts";
import { runTerraform, type TerraformToolchain } from "./terraform-cli.ts";

export interface TerraformProvisionerOptions {
  /** Null when no terraform is available: builds then fail, saying how to provide one. */
  toolchain: TerraformToolchain | null;
  /** Per-build working directories and the cache of initialised modules live here. */
  workDirectory: string;
  /** Kiln's agent init script per `<os>_<arch>`, placeholders left for the provider. */
  initScripts(): Promise<Partial<Record<string, string>>>;
  /** Variables terraform and the commands it runs (local-exec) inherit, e.g. PATH and HOME. */
  environment?: Record<string, string>;
  /** A build or import taking longer than this is interrupted and fails. */
  timeoutMs?: number;
  /** Keep working directories after a build (debugging). */
  keepWorkDirectories?: boolean;
}

export interface ImportRequest {
  template: BuildTemplate;
  accessUrl: string;
  log(entry: ProvisionLog): void;
  signal: AbortSignal;
}

export interface TerraformProvisioner extends Provisioner {
  /** `init` + `plan` of a new template version: its parameters, agents, apps, scripts and metadata. */
  importTemplate(request: ImportRequest): Promise<TemplateSchema>;
}

const STATE_FILE = "terraform.tfstate";
const VARIABLES_FILE = "kiln-template-variables.auto.tfvars.json";

export function createTerraformProvisioner(options: TerraformProvisionerOptions): TerraformProvisioner {
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;

  function toolchain(): TerraformToolchain {
    if (options.toolchain) return options.toolchain;
    throw new ProvisionError("Terraform is not available on this server: build the pinned toolchain with `node provisioner/scripts/toolchain.mjs`, or point KILN_TERRAFORM_PATH (and KILN_TERRAFORM_CLI_CONFIG) at your own");
  }

  /** One terraform command; its output goes to the build log. Returns the error diagnostics it printed. */
  async function terraform(stage: string, args: string[], context: { directory: string; env: Record<string, string>; log: ProvisionRequest["log"]; signal: AbortSignal; json: boolean }) {
    const errors: string[] = [];
    const tail: string[] = [];
    const remember = (line: string) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
    };
    const result = await runTerraform({
      toolchain: toolchain(), args, cwd: context.directory, env: context.env, signal: context.signal,
      onLine(stream, line) {
        if (!line.trim()) return;
        if (context.json && line.startsWith("{")) {
          const entry = presentJsonLine(line);
          if (!entry) return;
          if (entry.level === "error") errors.push(entry.output);
          remember(entry.output);
          context.log({ ...entry, stage });
          return;
        }
        const plain = stripAnsi(line);
        if (stream === "stderr" && /^(│ )?Error: /.test(plain)) errors.push(plain.replace(/^│ /, ""));
        remember(plain);
        context.log({ level: stream === "stderr" ? "error" : "info", stage, output: plain });
      },
    });
    return { ...result, errors, tail: tail.join("\n") };
  }

  /**
   * `terraform init` once per distinct set of files: the initialised `.terraform` (providers from the
   * mirror, modules) and the lock file are kept and copied into later working directories.
   */
  async function initialise(directory: string, template: BuildTemplate, env: Record<string, string>, log: ProvisionRequest["log"], signal: AbortSignal) {
    const cache = path.join(options.workDirectory, "init-cache", template.filesHash);
    if (existsSync(path.join(cache, "done"))) {
      await linkTree(path.join(cache, ".terraform"), path.join(directory, ".terraform"));
      if (existsSync(path.join(cache, ".terraform.lock.hcl"))) await cp(path.join(cache, ".terraform.lock.hcl"), path.join(directory, ".terraform.lock.hcl"));
      log({ level: "info", stage: "init", output: "using the initialised module cached for this template version" });
      return;
    }
    const init = await terraform("init", ["init", "-input=false", "-no-color"], { directory, env, log, signal, json: false });
    if (init.exitCode !== 0) {
      throw new ProvisionError(init.aborted ? "terraform init was interrupted" : `terraform init failed: ${init.errors.join("; ") || `exit ${init.exitCode}`}`, init.tail);
    }
    const staging = `${cache}.${randomUUID()}`;
    await mkdir(staging, { recursive: true });
    await linkTree(path.join(directory, ".terraform"), path.join(staging, ".terraform")).catch(() => {});
    if (existsSync(path.join(directory, ".terraform.lock.hcl"))) await cp(path.join(directory, ".terraform.lock.hcl"), path.join(staging, ".terraform.lock.hcl"));
    await writeFile(path.join(staging, "done"), "");
    await rename(staging, cache).catch(() => rm(staging, { recursive: true, force: true }));
  }

  function baseEnvironment(): Record<string, string> {
    return { ...(options.environment ?? {}) };
  }

  async function withTimeout<T>(signal: AbortSignal, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = AbortSignal.any([signal, timeout]);
    try {
      return await run(combined);
    } catch (error) {
      if (timeout.aborted && !signal.aborted) throw new ProvisionError(`terraform did not finish within ${Math.round(timeoutMs / 1000)} s and was interrupted`, error instanceof ProvisionError ? error.logTail : undefined, { state: error instanceof ProvisionError ? error.state : undefined });
      throw error;
    }
  }

  async function prepare(directory: string, template: BuildTemplate, previousState: unknown) {
    await rm(directory, { recursive: true, force: true });
    await writeTemplateFiles(directory, template.files);
    if (Object.keys(template.variables).length > 0) await writeFile(path.join(directory, VARIABLES_FILE), JSON.stringify(template.variables));
    if (previousState && typeof previousState === "object") await writeFile(path.join(directory, STATE_FILE), JSON.stringify(previousState));
  }

  return {
    kind: "terraform",

    async provision(request: ProvisionRequest): Promise<ProvisionResult> {
      toolchain();
      const template = request.template;
      if (!template) throw new ProvisionError("a terraform build needs its template version's files");
      const directory = path.join(options.workDirectory, "builds", request.buildId);
      const env = {
        ...baseEnvironment(),
        ...coderEnvironment({
          accessUrl: request.accessUrl, transition: request.transition, buildId: request.buildId,
          workspace: request.workspace, template: { id: template.id, name: template.name, versionName: template.versionName },
          parameters: request.parameters, previousParameters: request.previousParameters, agentToken: request.agentToken,
          initScripts: request.transition === "start" ? await options.initScripts() : {},
        }),
      };
      try {
        return await withTimeout(request.signal, async (signal) => {
          await prepare(directory, template, request.previousState);
          await initialise(directory, template, env, request.log, signal);
          const args = ["apply", "-json", "-auto-approve", "-input=false"];
          if (request.transition === "delete") args.push("-destroy");
          const apply = await terraform("apply", args, { directory, env, log: request.log, signal, json: true });
          const state = await readState(directory);
          if (apply.exitCode !== 0) {
            const reason = apply.aborted ? "terraform apply was interrupted" : `terraform apply failed: ${apply.errors.join("; ") || `exit ${apply.exitCode}`}`;
            throw new ProvisionError(reason, apply.tail, { state });
          }
          const schema = state ? schemaFromRawState(state) : { resources: [], agents: [] };
          return {
            state: request.transition === "delete" ? null : state,
            resources: schema.resources,
            agents: schema.agents,
          };
        });
      } finally {
        if (!options.keepWorkDirectories) await rm(directory, { recursive: true, force: true }).catch(() => {});
      }
    },

    async importTemplate(request: ImportRequest): Promise<TemplateSchema> {
      toolchain();
      const template = request.template;
      const directory = path.join(options.workDirectory, "imports", `${template.versionId}-${randomUUID().slice(0, 8)}`);
      // A start build for a workspace that does not exist yet, as coderd plans an import.
      const env = {
        ...baseEnvironment(),
        ...coderEnvironment({
          accessUrl: request.accessUrl, transition: "start", buildId: randomUUID(),
          workspace: { id: randomUUID(), name: "import", ownerName: "import", ownerEmail: "import@example.com" },
          template: { id: template.id, name: template.name, versionName: template.versionName },
          parameters: {}, agentToken: null, initScripts: await options.initScripts(),
        }),
      };
      try {
        return await withTimeout(request.signal, async (signal) => {
          await prepare(directory, template, null);
          await initialise(directory, template, env, request.log, signal);
          const plan = await terraform("plan", ["plan", "-json", "-input=false", "-refresh=false", "-out=kiln.tfplan"], { directory, env, log: request.log, signal, json: true });
          if (plan.exitCode !== 0) {
            throw new ProvisionError(plan.aborted ? "terraform plan was interrupted" : `terraform plan failed: ${plan.errors.join("; ") || `exit ${plan.exitCode}`}`, plan.tail);
          }
          let shown = "";
          const show = await runTerraform({
            toolchain: toolchain(), args: ["show", "-json", "kiln.tfplan"], cwd: directory, env, signal,
            onLine(stream, line) {
              if (stream === "stdout") shown += `${line}\n`;
              else if (line.trim()) request.log({ level: "warn", stage: "plan", output: stripAnsi(line) });
            },
          });
          if (show.exitCode !== 0) throw new ProvisionError(`terraform show failed (exit ${show.exitCode})`);
          const schema = schemaFromPlan(JSON.parse(shown) as JsonPlan);
          request.log({
            level: "info", stage: "import",
            output: `found ${schema.parameters.length} parameter(s), ${schema.agents.length} agent(s), ${schema.resources.length} resource(s)`,
          });
          return schema;
        });
      } finally {
        if (!options.keepWorkDirectories) await rm(directory, { recursive: true, force: true }).catch(() => {});
      }
    },
  };
}

/**
 * Copies a directory tree by hard-linking its files (copying only across file systems): an initialised
 * module holds provider binaries of tens of megabytes, which terraform only reads.
 */
async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) await linkTree(source, target);
    else if (entry.isSymbolicLink()) await symlink(await readlink(source), target);
    else await link(source, target).catch(() => copyFile(source, target));
  }
}

async function readState(directory: string): Promise<RawState | null> {
  try {
    return JSON.parse(await readFile(path.join(directory, STATE_FILE), "utf8")) as RawState;
  } catch {
    return null;
  }
}

interface JsonLine {
  "@level"?: string;
  "@message"?: string;
  type?: string;
  diagnostic?: { severity?: string; summary?: string; detail?: string; range?: { filename?: string; start?: { line?: number } }; address?: string };
}

/** One line of `terraform -json` output as a build log entry; null for lines not worth showing. */
export function presentJsonLine(line: string): ProvisionLog & { type: string } | null {
  let parsed: JsonLine;
  try {
    parsed = JSON.parse(line) as JsonLine;
  } catch {
    return { level: "info", stage: "", output: line, type: "text" };
  }
  const type = parsed.type ?? "";
  const level = ({ trace: "debug", debug: "debug", info: "info", warn: "warn", error: "error" } as const)[parsed["@level"] as "info"] ?? "info";
  if (type === "diagnostic" && parsed.diagnostic) {
    const diagnostic = parsed.diagnostic;
    const severity = diagnostic.severity === "error" ? "Error" : "Warning";
    const where = diagnostic.range?.filename ? ` (${diagnostic.range.filename}${diagnostic.range.start?.line ? `:${diagnostic.range.start.line}` : ""})` : "";
    const detail = diagnostic.detail ? `: ${diagnostic.detail.replace(/\s+/g, " ").trim()}` : "";
    return { level: diagnostic.severity === "error" ? "error" : "warn", stage: "", output: `${severity}: ${diagnostic.summary ?? ""}${where}${detail}`, type };
  }
  if (type === "version") return { level: "debug", stage: "", output: parsed["@message"] ?? "", type };
  return { level, stage: "", output: parsed["@message"] ?? "", type };
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}
