import { once } from "node:events";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import ssh2 from "ssh2";
import type { ClientChannel } from "ssh2";
import type { WebSocket } from "ws";
import { unwrap, type KilnClient } from "../client/index.ts";
import { runSshStdio } from "../../bin/ssh-stdio.mjs";
import { info } from "./output.ts";
import { applyBlock, managedHosts, renderBlock } from "./ssh-config.ts";
import { describeClose, openWorkspaceSocket, type SocketCredentials } from "./workspace-socket.ts";

type Session = () => Promise<{ client: KilnClient; url: string; token: string }>;

const kilnScript = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/kiln.mjs");
/** OpenSSH's exit status when the connection itself failed. */
const CONNECTION_FAILED = 255;
const SIGNAL_NUMBERS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, ABRT: 6, KILL: 9, PIPE: 13, ALRM: 14, TERM: 15 };

export function registerSshCommands(program: Command, session: Session): void {
  program.command("ssh")
    .description("Open a shell in a workspace, or run a command there, over SSH through the tunnel")
    .argument("<workspace>", "workspace name")
    .argument("[command...]", "command to run instead of a shell (put it after --)")
    .option("--stdio", "relay the raw SSH connection on stdin/stdout (OpenSSH ProxyCommand; see 'kiln config-ssh')")
    .option("-t, --tty", "give a command a terminal, as for an interactive program")
    .action(async (workspace: string, command: string[], flags: { stdio?: boolean; tty?: boolean }) => {
      const { url, token } = await session();
      // bin/kiln.mjs answers `ssh --stdio` itself without loading the CLI; this path is for callers of main().
      process.exitCode = flags.stdio ? await runSshStdio([workspace]) : await sshSession({ url, token }, workspace, command, Boolean(flags.tty));
      // stdin may still hold the event loop open (a terminal, or ssh's pipe).
      process.exit();
    });

  program.command("config-ssh")
    .description("Add 'Host kiln.<workspace>' entries for your workspaces to your SSH config, so ssh, scp, VS Code and JetBrains reach them")
    .option("--ssh-config-file <path>", "the SSH config file to manage", path.join(os.homedir(), ".ssh", "config"))
    .option("-y, --yes", "write without asking")
    .action(async (flags: { sshConfigFile: string; yes?: boolean }) => {
      const { client, url } = await session();
      const { workspaces } = unwrap(await client.GET("/api/v1/workspaces"));
      await configSsh({ file: flags.sshConfigFile, yes: Boolean(flags.yes), deployment: url, workspaces: workspaces.map((workspace) => workspace.name) });
    });

  program.command("port-forward")
    .description("Forward local TCP ports to ports inside a workspace, through the tunnel")
    .argument("<workspace>", "workspace name")
    .requiredOption("--tcp <local:remote>", "forward 127.0.0.1:<local> to port <remote> in the workspace (repeatable; '<port>' alone uses the same number)", (value: string, previous: string[]) => [...previous, value], [] as string[])
    .action(async (workspace: string, flags: { tcp: string[] }) => {
      const { url, token } = await session();
      await portForward({ url, token }, workspace, flags.tcp.map(parseForward));
    });
}

/** Interactive shell or command over an ssh2 client on the tunnel's WebSocket; resolves to the remote exit status. */
async function sshSession(credentials: SocketCredentials, workspace: string, command: string[], forceTty: boolean): Promise<number> {
  const { ws, stream: socket } = await openWorkspaceSocket(credentials, workspace, "ssh");
  const closed = socketClosed(ws);
  const client = new ssh2.Client();
  client.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    client.once("ready", () => resolve());
    client.once("error", reject);
    client.once("close", () => reject(new Error(`the SSH connection to workspace '${workspace}' closed during setup`)));
    // The tunnel authenticated us and the server checked the workspace is ours; SSH itself uses no credentials.
    client.connect({ sock: socket, username: os.userInfo().username, hostVerifier: () => true, readyTimeout: 30_000 });
  });

  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const terminal = command.length === 0 ? interactive : forceTty;
  const window = { term: process.env.TERM || "xterm-256color", cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
  const env = process.env.LANG ? { LANG: process.env.LANG } : undefined;
  // Listeners go on inside the callback: ssh2 parses everything that arrived in one read at
  // once, so a quick command's exit status and close can be emitted before an `await` resumes.
  let exit: { code: number | null; signal: string | null } | null = null;
  let channelClosed!: Promise<unknown>;
  const channel = await new Promise<ClientChannel>((resolve, reject) => {
    const done = (error: Error | undefined, opened: ClientChannel) => {
      if (error) return reject(error);
      opened.on("exit", (code: number | null, signal?: string) => {
        exit = { code, signal: signal ?? null };
      });
      channelClosed = once(opened, "close").catch(() => null);
      resolve(opened);
    };
    if (command.length === 0) client.shell(terminal ? window : false, { env }, done);
    else client.exec(command.length === 1 ? command[0]! : command.map(shellQuote).join(" "), { pty: terminal ? window : undefined, env }, done);
  });

  const rawMode = terminal && process.stdin.isTTY === true;
  if (rawMode) process.stdin.setRawMode(true);
  process.stdin.pipe(channel);
  channel.pipe(process.stdout, { end: false });
  channel.stderr.pipe(process.stderr, { end: false });
  const onResize = () => channel.setWindow(process.stdout.rows || 24, process.stdout.columns || 80, 0, 0);
  if (terminal) process.stdout.on("resize", onResize);

  // Done when the channel closed and its output was all written out (it may have arrived before
  // the pipes were set up); a dropped connection closes the client, and ssh2 does not always
  // close its channels then.
  const drained = Promise.all([channel, channel.stderr].map((stream) => (stream.readableEnded ? null : once(stream, "end").catch(() => null))));
  await Promise.race([Promise.all([channelClosed, drained]), once(client, "close")]);
  process.stdout.off("resize", onResize);
  if (rawMode) process.stdin.setRawMode(false);
  process.stdin.unpipe(channel);
  client.end();
  const finished = exit as { code: number | null; signal: string | null } | null;
  if (finished) return finished.code ?? 128 + (SIGNAL_NUMBERS[(finished.signal ?? "").replace(/^SIG/, "")] ?? 1);
  const { code, reason } = await closed;
  info(`kiln: ${describeClose(workspace, code, reason) ?? `the SSH session in workspace '${workspace}' ended without an exit status`}`);
  return CONNECTION_FAILED;
}

function socketClosed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

interface Forward {
  local: number;
  remote: number;
}

function parseForward(spec: string): Forward {
  const match = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(spec);
  const local = Number(match?.[1] ?? match?.[2]);
  const remote = Number(match?.[2]);
  if (!match || !(local >= 0 && local <= 65535) || !(remote >= 1 && remote <= 65535)) throw new Error(`--tcp must be <local port>:<remote port> (or one port for both), got '${spec}'`);
  return { local, remote };
}

async function portForward(credentials: SocketCredentials, workspace: string, forwards: Forward[]): Promise<void> {
  const servers: net.Server[] = [];
  for (const forward of forwards) {
    const server = net.createServer((connection) => {
      connection.pause();
      openWorkspaceSocket(credentials, workspace, "tcp", { port: forward.remote }).then(({ stream: socket }) => {
        socket.on("error", () => connection.destroy());
        connection.on("error", () => socket.destroy());
        connection.pipe(socket);
        socket.pipe(connection);
        connection.resume();
      }, (error: Error) => {
        info(`kiln: port ${forward.local} -> ${workspace}:${forward.remote}: ${error.message}`);
        connection.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) => reject(new Error(`cannot listen on 127.0.0.1:${forward.local}: ${error.code ?? error.message}`)));
      server.listen(forward.local, "127.0.0.1", () => resolve());
    });
    servers.push(server);
    const bound = (server.address() as net.AddressInfo).port;
    info(`Forwarding 127.0.0.1:${bound} -> ${workspace}:${forward.remote}`);
  }
  info("Press Ctrl+C to stop.");
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve());
  });
  for (const server of servers) server.close();
  process.exit(0);
}

async function configSsh(options: { file: string; yes: boolean; deployment: string; workspaces: string[] }): Promise<void> {
  const current = await readFile(options.file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return "";
    throw error;
  });
  const block = renderBlock({
    deployment: options.deployment,
    workspaces: options.workspaces,
    proxy: { node: process.execPath, script: kilnScript, configDir: process.env.KILN_CONFIG_DIR },
  });
  const updated = applyBlock(current, block);
  if (updated === current) {
    info(`${options.file} is up to date (${options.workspaces.length} workspace${options.workspaces.length === 1 ? "" : "s"}).`);
    return;
  }
  const before = new Set(managedHosts(current));
  const after = new Set(managedHosts(updated));
  const added = [...after].filter((host) => !before.has(host));
  const removed = [...before].filter((host) => !after.has(host));
  info(`Updating the Kiln block in ${options.file}:`);
  for (const host of added) info(`  + ${host}`);
  for (const host of removed) info(`  - ${host}`);
  if (added.length + removed.length === 0) info("  (entries rewritten)");
  if (!options.yes) {
    if (!process.stdin.isTTY) throw new Error("not writing without confirmation; pass --yes");
    const readline = createInterface({ input: process.stdin, output: process.stderr });
    const answer = (await readline.question("Continue? [y/N] ")).trim().toLowerCase();
    readline.close();
    if (answer !== "y" && answer !== "yes") {
      info("Nothing written.");
      return;
    }
  }
  await mkdir(path.dirname(options.file), { recursive: true, mode: 0o700 });
  const temporary = `${options.file}.kiln-${process.pid}.tmp`;
  await writeFile(temporary, updated, { mode: 0o600 });
  await rename(temporary, options.file);
  const example = [...after][0];
  info(example ? `Done. Try: ssh ${example}` : `Done. You have no workspaces yet; rerun after 'kiln create'.`);
}

function shellQuote(argument: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}
