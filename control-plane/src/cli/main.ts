import { createInterface } from "node:readline/promises";
import { Command, Option } from "commander";
import { ApiError, createKilnClient, unwrap, type KilnClient, type Schemas } from "../client/index.ts";
import { parseServerConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import { version } from "../version.ts";
import { registerAdminCommands } from "./admin-commands.ts";
import { registerChatCommands } from "./chat-commands.ts";
import { registerTemplateCommands } from "./template-commands.ts";
import { registerProvisionerCommand } from "./provisioner-command.ts";
import { registerSshCommands } from "./ssh-commands.ts";
import { clearCredentials, readCredentials, writeCredentials } from "./config-store.ts";
import { info, printJson, printTable, type OutputFormat } from "./output.ts";
import { followBuild, waitForAgent } from "./wait.ts";

const program = new Command("kiln").description("Kiln: a control plane for AI coding agents and remote development workspaces").version(version);
const outputOption = () => new Option("-o, --output <format>", "table or json").choices(["table", "json"]).default("table");

async function session(): Promise<{ client: KilnClient; url: string; token: string }> {
  const credentials = await readCredentials();
  if (!credentials) throw new UsageError("you are not logged in; run 'kiln login <url>'");
  return { client: createKilnClient(credentials), ...credentials };
}

class UsageError extends Error {}

program.command("server")
  .description("Run the control plane: API, dashboard, agent loop and provisioner")
  .option("--data-dir <path>", "data directory (env KILN_DATA_DIR)")
  .option("--listen <host:port>", "address to listen on (env KILN_LISTEN)")
  .option("--access-url <url>", "URL users and workspaces reach this server at (env KILN_ACCESS_URL)")
  .option("--postgres-url <url>", "Postgres URL; embedded PGlite when absent (env KILN_POSTGRES_URL)")
  .option("--tailnet", "reach workspaces over a WireGuard tailnet: an embedded headscale + DERP, or the external one in KILN_TAILNET_URL/KILN_TAILNET_API_KEY (env KILN_TAILNET=1)")
  .option("--tailnet-url <url>", "URL of the external headscale (with KILN_TAILNET_API_KEY), or the URL nodes reach the embedded one at (env KILN_TAILNET_URL)")
  .action(async (flags: { dataDir?: string; listen?: string; accessUrl?: string; postgresUrl?: string; tailnet?: boolean; tailnetUrl?: string }) => {
    const config = parseServerConfig(flags);
    const log = createLogger({ level: config.logLevel });
    // Loaded only here: the server pulls in every LLM SDK, which would slow every other command
    // (and `kiln ssh --stdio`, which OpenSSH starts for each connection) by seconds.
    const { startServer } = await import("../server/server.ts");
    const server = await startServer(config, log);
    log.info({ url: server.url, accessUrl: server.accessUrl, database: server.database.kind, dataDir: config.dataDir }, "kiln server ready");
    const hasUsers = unwrap(await createKilnClient({ url: server.accessUrl }).GET("/api/v1/buildinfo")).has_users;
    info(`\nKiln ${version} is running at ${server.accessUrl}  (database: ${server.database.kind === "pglite" ? `embedded PGlite in ${config.dataDir}` : "postgres"})`);
    if (!hasUsers) {
      info(`Create the first user (the owner) from another shell:\n  kiln login ${server.accessUrl} --first-user-email you@example.com --first-user-username you --first-user-password '<password>'\n`);
    } else {
      info(`Log in with: kiln login ${server.accessUrl}\n`);
    }
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down");
      await server.close();
      process.exit(0);
    };
    process.on("SIGINT", () => void stop("SIGINT"));
    process.on("SIGTERM", () => void stop("SIGTERM"));
  });

program.command("login")
  .description("Log in to a Kiln deployment (or create its first user)")
  .argument("<url>", "the deployment's URL")
  .option("--first-user-email <email>", "bootstrap: the owner's email")
  .option("--first-user-username <name>", "bootstrap: the owner's username")
  .option("--first-user-password <password>", "bootstrap: the owner's password")
  .option("--login <email-or-username>", "log in as this user")
  .option("--password <password>", "password (env KILN_PASSWORD; prompted when omitted on a terminal)")
  .action(async (rawUrl: string, flags: { firstUserEmail?: string; firstUserUsername?: string; firstUserPassword?: string; login?: string; password?: string }) => {
    const url = rawUrl.replace(/\/$/, "");
    const client = createKilnClient({ url });
    const buildInfo = unwrap(await client.GET("/api/v1/buildinfo").catch((error: Error) => {
      throw new UsageError(`cannot reach ${url}: ${error.message}`);
    }));
    let result: Schemas["Session"];
    if (!buildInfo.has_users) {
      const email = flags.firstUserEmail ?? (await prompt("Email of the first user (owner): "));
      const username = flags.firstUserUsername ?? (await prompt("Username: "));
      const password = flags.firstUserPassword ?? process.env.KILN_PASSWORD ?? (await prompt("Password: "));
      result = unwrap(await client.POST("/api/v1/users/first", { body: { email, username, password } }));
      info(`Created the first user '${result.user.username}' (owner).`);
    } else {
      if (flags.firstUserEmail) info("This deployment already has users; logging in instead of bootstrapping.");
      const login = flags.login ?? flags.firstUserUsername ?? flags.firstUserEmail ?? (await prompt("Email or username: "));
      const password = flags.password ?? flags.firstUserPassword ?? process.env.KILN_PASSWORD ?? (await prompt("Password: "));
      result = unwrap(await client.POST("/api/v1/auth/login", { body: { login, password } }));
    }
    const file = await writeCredentials({ url, token: result.token });
    info(`Logged in to ${url} as ${result.user.username}. Session saved to ${file}.`);
  });

program.command("logout").description("Revoke this machine's session").action(async () => {
  const credentials = await readCredentials();
  if (credentials) await createKilnClient(credentials).POST("/api/v1/auth/logout").catch(() => undefined);
  await clearCredentials();
  info("Logged out.");
});

const templates = program.command("templates").description("Workspace templates");
templates.command("list").description("List templates").addOption(outputOption()).action(async (flags: { output: OutputFormat }) => {
  const { client } = await session();
  const { templates: rows } = unwrap(await client.GET("/api/v1/templates"));
  if (flags.output === "json") return printJson(rows);
  printTable(rows, ["name", "kind", "description"]);
});

program.command("create").description("Create a workspace and wait until its agent is ready")
  .argument("<name>", "workspace name")
  .requiredOption("-t, --template <template>", "template name")
  .option("-p, --parameter <name=value...>", "template parameter", [])
  .option("--no-wait", "return as soon as the build is queued")
  .addOption(outputOption())
  .action(async (name: string, flags: { template: string; parameter: string[]; wait: boolean; output: OutputFormat }) => {
    const { client, url, token } = await session();
    const parameters = Object.fromEntries(flags.parameter.map((pair) => {
      const index = pair.indexOf("=");
      if (index <= 0) throw new UsageError(`--parameter must be name=value, got '${pair}'`);
      return [pair.slice(0, index), pair.slice(index + 1)];
    }));
    let workspace = unwrap(await client.POST("/api/v1/workspaces", { body: { name, template: flags.template, parameters } }));
    if (flags.wait) workspace = await waitForBuild(client, url, token, workspace, flags.output === "json");
    if (flags.output === "json") return printJson(workspace);
    info(`Workspace '${workspace.name}' is ${workspace.status}. Try: kiln exec ${workspace.name} -- echo hello`);
  });

program.command("list").alias("ls").description("List workspaces")
  .option("-a, --all", "every user's workspaces (admins)")
  .addOption(outputOption())
  .action(async (flags: { all?: boolean; output: OutputFormat }) => {
    const { client } = await session();
    const { workspaces } = unwrap(await client.GET("/api/v1/workspaces", { params: { query: { all: flags.all ? "true" : undefined } } }));
    if (flags.output === "json") return printJson(workspaces);
    printTable(workspaces.map((workspace) => ({
      workspace: `${workspace.owner_name}/${workspace.name}`, template: workspace.template_name, status: workspace.status,
      agent: workspace.agent ? `${workspace.agent.lifecycle_state}${workspace.agent.connected ? "" : " (disconnected)"}` : "-",
      build: workspace.latest_build ? `#${workspace.latest_build.build_number} ${workspace.latest_build.transition}` : "-",
    })), ["workspace", "template", "status", "agent", "build"]);
  });

for (const transition of ["start", "stop", "delete"] as const) {
  program.command(transition).description(`${transition[0]!.toUpperCase()}${transition.slice(1)} a workspace and wait for the build`)
    .argument("<workspace>", "workspace name")
    .option("--no-wait", "return as soon as the build is queued")
    .addOption(outputOption())
    .action(async (reference: string, flags: { wait: boolean; output: OutputFormat }) => {
      const { client, url, token } = await session();
      let workspace = unwrap(await client.POST("/api/v1/workspaces/{workspace}/builds", { params: { path: { workspace: reference } }, body: { transition } }));
      if (flags.wait) workspace = await waitForBuild(client, url, token, workspace, flags.output === "json");
      if (flags.output === "json") return printJson(workspace);
      info(`Workspace '${workspace.name}' is ${transition === "delete" ? "deleted" : workspace.status}.`);
    });
}

async function waitForBuild(client: KilnClient, url: string, token: string, workspace: Schemas["Workspace"], quiet: boolean): Promise<Schemas["Workspace"]> {
  const build = workspace.latest_build!;
  if (!quiet) info(`Build #${build.build_number} (${build.transition}) of '${workspace.name}':`);
  const status = await followBuild({ url, token, workspace: workspace.id, buildNumber: build.build_number, quiet });
  if (status !== "succeeded") {
    const after = unwrap(await client.GET("/api/v1/workspaces/{workspace}", { params: { path: { workspace: workspace.id } } }).catch(() => ({ data: workspace, response: new Response() })));
    throw new UsageError(`build #${build.build_number} ${status}${after.latest_build?.error ? `: ${after.latest_build.error}` : ""}`);
  }
  if (build.transition === "delete") return { ...workspace, status: "deleted" };
  if (build.transition === "start") {
    if (!quiet) info("Waiting for the workspace agent…");
    return waitForAgent(client, workspace.id);
  }
  return unwrap(await client.GET("/api/v1/workspaces/{workspace}", { params: { path: { workspace: workspace.id } } }));
}

program.command("ping").description("How the control plane reaches a workspace (tailnet direct, DERP, or relay) and the round trip")
  .argument("<workspace>", "workspace name")
  .option("-c, --count <n>", "pings to send", (value) => Number(value), 3)
  .addOption(outputOption())
  .action(async (reference: string, flags: { count: number; output: OutputFormat }) => {
    const { client } = await session();
    if (!Number.isInteger(flags.count) || flags.count < 1 || flags.count > 100) throw new UsageError("--count must be a whole number from 1 to 100");
    for (let sent = 1; sent <= flags.count; sent++) {
      const ping = unwrap(await client.GET("/api/v1/workspaces/{workspace}/ping", { params: { path: { workspace: reference } } }));
      if (flags.output === "json") {
        process.stdout.write(`${JSON.stringify(ping)}\n`);
      } else {
        const via = ping.tailnet ? `tailnet ${ping.path === "derp" ? `via ${ping.tailnet.endpoint}` : `direct via ${ping.tailnet.endpoint}`} (${ping.tailnet.address}:${ping.tailnet.port}, wireguard ${ping.tailnet.wireguard_round_trip_ms < 1 ? "<1" : ping.tailnet.wireguard_round_trip_ms.toFixed(0)} ms)` : `relay${ping.tailnet_error ? ` (not on the tailnet: ${ping.tailnet_error})` : ""}`;
        process.stdout.write(`pong from ${reference} over ${via} in ${ping.round_trip_ms.toFixed(2)} ms\n`);
      }
      if (sent < flags.count) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  });

program.command("tailnet").description("The deployment's WireGuard tailnet")
  .command("device-key").description("A single-use key that joins one of your devices to the tailnet; it reaches only your workspaces, over SSH")
  .addOption(outputOption())
  .action(async (flags: { output: OutputFormat }) => {
    const { client } = await session();
    const key = unwrap(await client.POST("/api/v1/users/me/tailnet-device-key"));
    if (flags.output === "json") return printJson(key);
    info(`On the device (key valid until ${key.expires_at}, single use):\n`);
    process.stdout.write(`${key.command}\n`);
    if (key.derp_over_http) info("\nThis deployment's DERP server has no TLS: start tailscaled there with TS_DEBUG_USE_DERP_HTTP=1.");
    info("\nThen 'kiln show <workspace>' prints the ssh command for each of your workspaces.");
  });

program.command("exec").description("Run a command in a workspace, streaming its output; exits with its exit code")
  .argument("<workspace>", "workspace name")
  .argument("<command...>", "command and arguments (after --)")
  .option("-w, --workdir <dir>", "working directory in the workspace")
  .option("--timeout <seconds>", "kill the command after this many seconds", (value) => Number(value))
  .action(async (reference: string, command: string[], flags: { workdir?: string; timeout?: number }) => {
    const { url, token } = await session();
    const controller = new AbortController();
    process.on("SIGINT", () => controller.abort());
    const response = await fetch(`${url}/api/v1/workspaces/${encodeURIComponent(reference)}/exec`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ command: command.length === 1 ? command[0] : command.map(shellQuote).join(" "), workdir: flags.workdir, timeout_ms: flags.timeout ? Math.round(flags.timeout * 1000) : undefined }),
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => ({}))) as { error?: { code: string; message: string; details?: Record<string, unknown> } };
      throw new ApiError(response.status, body.error?.code ?? "http_error", body.error?.message ?? `HTTP ${response.status}`, body.error?.details);
    }
    let buffer = "";
    let exitCode = 1;
    const decoder = new TextDecoder();
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line) continue;
        const event = JSON.parse(line) as { type: string; stream?: string; data?: string; exit_code?: number | null; signal?: string | null };
        if (event.type === "output") (event.stream === "stderr" ? process.stderr : process.stdout).write(Buffer.from(event.data ?? "", "base64"));
        if (event.type === "exit") exitCode = event.exit_code ?? (event.signal ? 128 + (signalNumbers[event.signal] ?? 1) : 1);
      }
    }
    process.exitCode = exitCode;
  });

registerChatCommands(program, session);
registerTemplateCommands(program, session);
registerProvisionerCommand(program);
registerAdminCommands(program, session);
registerSshCommands(program, session);

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

function shellQuote(argument: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}

async function prompt(question: string): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError(`missing input for '${question.replace(/[:\s]+$/, "")}' and no terminal to ask on; pass it as a flag`);
  const readline = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await readline.question(question)).trim();
  } finally {
    readline.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof ApiError) {
      info(`error: ${error.message}${error.details ? `\n${JSON.stringify(error.details)}` : ""}`);
    } else if (error instanceof UsageError) {
      info(`error: ${error.message}`);
    } else {
      info(`error: ${error instanceof Error ? error.message : String(error)}`);
    }
    process.exitCode = 1;
  }
}
