import path from "node:path";
import { Option, type Command } from "commander";
import { unwrap, type KilnClient, type Schemas } from "../client/index.ts";
import { info, printJson, printTable, type OutputFormat } from "./output.ts";

type Session = () => Promise<{ client: KilnClient; url: string; token: string }>;
const outputOption = () => new Option("-o, --output <format>", "table or json").choices(["table", "json"]).default("table");

/** Reads a text/event-stream, calling `onEvent` per event; resumes after drops. Returns when `onEvent` returns a value. */
export async function followEvents<T>(url: string, token: string, onEvent: (event: string, data: string) => T | undefined): Promise<T> {
  let lastId = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) } });
    if (!response.ok || !response.body) throw new Error(`could not follow ${url}: HTTP ${response.status}`);
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? "message";
        const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.replace(/^data: ?/, "")).join("\n");
        const id = /^id: ?(.*)$/m.exec(block)?.[1];
        if (id) lastId = id;
        const result = onEvent(event, data);
        if (result !== undefined) return result;
      }
    }
  }
  throw new Error("lost the event stream too many times");
}

function pairs(values: string[], flag: string): Record<string, string> {
  return Object.fromEntries(values.map((pair) => {
    const index = pair.indexOf("=");
    if (index <= 0) throw new Error(`${flag} must be name=value, got '${pair}'`);
    return [pair.slice(0, index), pair.slice(index + 1)];
  }));
}

function describeParameter(parameter: Schemas["TemplateParameter"]) {
  const rules = [
    parameter.options.length ? `one of ${parameter.options.map((option) => option.value).join("|")}` : "",
    parameter.validation?.regex ? `matches ${parameter.validation.regex}` : "",
    parameter.validation && (parameter.validation.min !== null || parameter.validation.max !== null) ? `${parameter.validation.min ?? "-∞"}..${parameter.validation.max ?? "∞"}` : "",
  ].filter(Boolean).join(", ");
  return {
    name: parameter.name, type: parameter.type, default: parameter.required ? "(required)" : JSON.stringify(parameter.default),
    mutable: parameter.mutable ? "yes" : "no", rules: rules || "-",
  };
}

/** `kiln templates push|versions|promote|show` and `kiln show|logs` for workspaces. */
export function registerTemplateCommands(program: Command, session: Session): void {
  const templates = program.commands.find((command) => command.name() === "templates") ?? program.command("templates").description("Workspace templates");

  templates.command("push").description("Upload a directory as a new version of a terraform template (created on first push) and wait for its import")
    .argument("[directory]", "the template's directory", ".")
    .option("-n, --name <template>", "template name (default: the directory's name)")
    .option("--version-name <name>", "version name (default v<N>)")
    .option("-m, --message <message>", "what changed")
    .option("--variable <name=value...>", "value for one of the module's Terraform variables", [])
    .option("--no-activate", "keep the current active version")
    .option("--display-name <name>", "template display name")
    .option("--description <text>", "template description")
    .addOption(outputOption())
    .action(async (directory: string, flags: { name?: string; versionName?: string; message?: string; variable: string[]; activate: boolean; displayName?: string; description?: string; output: OutputFormat }) => {
      const { client, url, token } = await session();
      const name = flags.name ?? path.basename(path.resolve(directory));
      // Loaded on use: every other command starts faster without the provisioner's modules.
      const { Terraform } = await import("@kiln/provisioner");
      const files = await Terraform.readTemplateDirectory(directory);
      const quiet = flags.output === "json";
      if (!quiet) info(`Uploading ${files.length} file(s) from ${directory} as template '${name}'…`);
      const pushed = unwrap(await client.POST("/api/v1/templates/{template}/versions", {
        params: { path: { template: name } },
        body: {
          files, name: flags.versionName, message: flags.message, variables: pairs(flags.variable, "--variable"), activate: flags.activate,
          display_name: flags.displayName, description: flags.description,
        },
      }));
      if (!quiet) info(`Version ${pushed.version.name}: importing (terraform init + plan)…`);
      const status = await followEvents(`${url}/api/v1/templates/${encodeURIComponent(name)}/versions/${pushed.version.id}/logs?follow=true`, token, (event, data) => {
        if (event === "log" && !quiet) {
          const log = JSON.parse(data) as Schemas["BuildLog"];
          info(`  [${log.stage}] ${log.output}`);
        }
        return event === "end" ? (JSON.parse(data) as { job_status: string }).job_status : undefined;
      });
      const version = unwrap(await client.GET("/api/v1/templates/{template}/versions/{version}", { params: { path: { template: name, version: pushed.version.id } } }));
      if (status !== "succeeded") throw new Error(`import of ${name} ${version.name} ${status}: ${version.error ?? "see the log above"}`);
      if (quiet) return printJson(version);
      info(`Template '${name}' version ${version.name} imported${version.active ? " and active" : ""}.`);
      if (version.parameters.length) printTable(version.parameters.map(describeParameter), ["name", "type", "default", "mutable", "rules"]);
    });

  templates.command("versions").description("List a template's versions").argument("<template>").addOption(outputOption())
    .action(async (template: string, flags: { output: OutputFormat }) => {
      const { client } = await session();
      const { versions } = unwrap(await client.GET("/api/v1/templates/{template}/versions", { params: { path: { template } } }));
      if (flags.output === "json") return printJson(versions);
      printTable(versions.map((version) => ({
        name: version.name, status: version.status, active: version.active ? "yes" : "", created: version.created_at, by: version.created_by ?? "", message: version.message,
      })), ["name", "status", "active", "created", "by", "message"]);
    });

  templates.command("promote").description("Make a version the one new workspaces use").argument("<template>").argument("<version>")
    .action(async (template: string, version: string) => {
      const { client } = await session();
      const promoted = unwrap(await client.POST("/api/v1/templates/{template}/versions/{version}/promote", { params: { path: { template, version } } }));
      info(`Template '${template}' now builds version ${promoted.name}.`);
    });

  templates.command("show").description("A template version's parameters, agents and resources").argument("<template>")
    .option("--version <version>", "version name or id", "active").addOption(outputOption())
    .action(async (template: string, flags: { version: string; output: OutputFormat }) => {
      const { client } = await session();
      const version = unwrap(await client.GET("/api/v1/templates/{template}/versions/{version}", { params: { path: { template, version: flags.version } } }));
      if (flags.output === "json") return printJson(version);
      info(`${template} ${version.name} (${version.status}${version.active ? ", active" : ""})${version.error ? `: ${version.error}` : ""}`);
      if (version.parameters.length) printTable(version.parameters.map(describeParameter), ["name", "type", "default", "mutable", "rules"]);
      for (const agent of version.agents as { name: string; scripts?: { display_name: string }[]; apps?: { slug: string }[]; metadata?: { key: string }[] }[]) {
        info(`agent ${agent.name}: scripts [${(agent.scripts ?? []).map((script) => script.display_name).join(", ")}], apps [${(agent.apps ?? []).map((app) => app.slug).join(", ")}], metadata [${(agent.metadata ?? []).map((item) => item.key).join(", ")}]`);
      }
    });

  program.command("show").description("A workspace's resources, agent lifecycle, scripts and metadata").argument("<workspace>").addOption(outputOption())
    .action(async (reference: string, flags: { output: OutputFormat }) => {
      const { client } = await session();
      const workspace = unwrap(await client.GET("/api/v1/workspaces/{workspace}", { params: { path: { workspace: reference } } }));
      const details = unwrap(await client.GET("/api/v1/workspaces/{workspace}/agent-info", { params: { path: { workspace: reference } } }));
      if (flags.output === "json") return printJson({ workspace, ...details });
      process.stdout.write(`${workspace.owner_name}/${workspace.name}  ${workspace.status}  (template ${workspace.template_name}, build #${workspace.latest_build?.build_number ?? "-"})\n`);
      for (const resource of details.resources as { address: string; hide?: boolean; metadata?: { key: string; value: string; sensitive: boolean }[] }[]) {
        if (resource.hide) continue;
        process.stdout.write(`  resource ${resource.address}${(resource.metadata ?? []).map((item) => `  ${item.key}=${item.sensitive ? "(sensitive)" : item.value}`).join("")}\n`);
      }
      const agent = details.agent;
      if (!agent) return;
      process.stdout.write(`  agent ${agent.name}: ${agent.lifecycle_state}${agent.connected ? ", connected" : ", disconnected"}${agent.version ? `, ${agent.version}` : ""}\n`);
      if (agent.tailnet) process.stdout.write(`    tailnet ${agent.tailnet.address}${agent.tailnet.ssh_port ? `  (from your own devices: ssh -p ${agent.tailnet.ssh_port} ${agent.tailnet.address})` : ""}\n`);
      else if (agent.tailnet_error) process.stdout.write(`    not on the tailnet: ${agent.tailnet_error}\n`);
      for (const item of agent.metadata) process.stdout.write(`    ${item.display_name}: ${item.error ? `error: ${item.error}` : item.value ?? "(not collected yet)"}\n`);
      for (const run of agent.script_runs.slice(0, 10)) process.stdout.write(`    script ${run.script} (${run.stage}): ${run.status}${run.exit_code !== null ? ` (exit ${run.exit_code})` : ""}\n`);
    });

  program.command("logs").description("A workspace's build logs (Terraform's output), or with --agent its scripts' output")
    .argument("<workspace>")
    .option("-b, --build <number>", "build number (default: the latest)")
    .option("--agent", "the agent's startup/shutdown script output instead")
    .option("-f, --follow", "keep streaming")
    .action(async (reference: string, flags: { build?: string; agent?: boolean; follow?: boolean }) => {
      const { url, token } = await session();
      const base = `${url}/api/v1/workspaces/${encodeURIComponent(reference)}`;
      if (flags.agent) {
        const print = (log: Schemas["AgentLog"]) => process.stdout.write(`[${log.source}] ${log.output}\n`);
        if (!flags.follow) {
          const response = await fetch(`${base}/agent-logs`, { headers: { authorization: `Bearer ${token}` } });
          if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
          for (const log of ((await response.json()) as { logs: Schemas["AgentLog"][] }).logs) print(log);
          return;
        }
        await followEvents(`${base}/agent-logs?follow=true`, token, (event, data) => {
          if (event === "log") print(JSON.parse(data) as Schemas["AgentLog"]);
          return undefined;
        });
        return;
      }
      const build = flags.build ?? "latest";
      const print = (log: Schemas["BuildLog"]) => process.stdout.write(`[${log.stage}] ${log.output}\n`);
      if (!flags.follow) {
        const response = await fetch(`${base}/builds/${build}/logs`, { headers: { authorization: `Bearer ${token}` } });
        if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
        for (const log of ((await response.json()) as { logs: Schemas["BuildLog"][] }).logs) print(log);
        return;
      }
      await followEvents(`${base}/builds/${build}/logs?follow=true`, token, (event, data) => {
        if (event === "log") print(JSON.parse(data) as Schemas["BuildLog"]);
        return event === "end" ? true : undefined;
      });
    });
}
