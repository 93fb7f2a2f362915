import { spawn } from "node:child_process";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import ssh2 from "ssh2";
import type { Connection, PseudoTtyInfo, ServerChannel, Session } from "ssh2";
import { Coalescer, defaultShell, spawnTerminal, type Terminal, type TerminalOptions } from "../pty/index.ts";
import { serveSftp } from "./sftp-server.ts";

export interface SshServerOptions {
  hostKey: Buffer;
  /** Where shells, commands and relative SFTP paths start. */
  root: string;
  /** Environment programs inherit (credentials already removed). */
  env: NodeJS.ProcessEnv;
  log: Logger;
  spawnTerminal?: (options: TerminalOptions) => Terminal;
}

/** A program an SSH session runs; what `window-change` and `signal` requests act on. */
interface Program {
  resize(cols: number, rows: number): void;
  signal(signal: NodeJS.Signals): void;
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SIGNALS = new Set(["ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2"]);

/**
 * The daemon's SSH server. It listens on no port: the only connections it sees are byte
 * streams that arrived through the tunnel (`accept`), which the control plane opened for a
 * user it authenticated and allowed into this workspace. So SSH authentication accepts
 * anyone; the tunnel is the authentication.
 *
 * Supports shells and commands with or without a PTY, `env`, `window-change`, `signal`, the
 * sftp subsystem (so scp and IDEs work), local (`direct-tcpip`, i.e. `ssh -L`/`-D`) and
 * remote (`tcpip-forward`, `ssh -R`, bound to loopback) port forwarding.
 */
export class SshServer {
  readonly #options: SshServerOptions;
  readonly #log: Logger;
  readonly #server: ssh2.Server;
  readonly #connections = new Set<Connection>();

  constructor(options: SshServerOptions) {
    this.#options = options;
    this.#log = options.log.child({ module: "ssh" });
    this.#server = new ssh2.Server({ hostKeys: [options.hostKey], ident: "kiln" }, (client) => this.#onConnection(client));
  }

  /** Serves one SSH connection over `socket` (a tunnel stream). */
  accept(socket: Duplex): void {
    this.#server.injectSocket(socket as net.Socket);
  }

  get connections(): number {
    return this.#connections.size;
  }

  close(): void {
    for (const client of this.#connections) client.end();
  }

  #onConnection(client: Connection): void {
    const log = this.#log;
    const forwards = new Map<string, net.Server>();
    this.#connections.add(client);
    log.debug({ connections: this.#connections.size }, "ssh connection");
    client.on("error", (error) => log.debug({ err: error }, "ssh connection error"));
    client.on("close", () => {
      this.#connections.delete(client);
      for (const server of forwards.values()) server.close();
      forwards.clear();
      log.debug({ connections: this.#connections.size }, "ssh connection closed");
    });
    client.on("authentication", (context) => context.accept());
    client.on("ready", () => {
      client.on("session", (accept) => this.#onSession(accept()));
      client.on("tcpip", (accept, reject, info) => {
        const socket = net.connect({ host: info.destIP, port: info.destPort });
        socket.once("error", (error) => {
          log.debug({ host: info.destIP, port: info.destPort, err: error }, "direct-tcpip connect failed");
          reject?.();
        });
        socket.once("connect", () => {
          socket.removeAllListeners("error");
          bridge(socket, accept());
        });
      });
      client.on("request", (accept, reject, name, info) => {
        if (name === "tcpip-forward") {
          const key = `${info.bindAddr}:${info.bindPort}`;
          const server = net.createServer((socket) => {
            const address = server.address() as net.AddressInfo;
            client.forwardOut(info.bindAddr, address.port, socket.remoteAddress ?? "127.0.0.1", socket.remotePort ?? 0, (error, channel) => {
              if (error) socket.destroy();
              else bridge(socket, channel);
            });
          });
          server.once("error", (error) => {
            log.debug({ bind: key, err: error }, "tcpip-forward bind failed");
            reject?.();
          });
          // Like sshd's default `GatewayPorts no`: remote forwards listen on loopback only.
          server.listen({ host: "127.0.0.1", port: info.bindPort }, () => {
            forwards.set(key, server);
            accept?.((server.address() as net.AddressInfo).port);
          });
        } else if (name === "cancel-tcpip-forward") {
          const key = `${info.bindAddr}:${info.bindPort}`;
          const server = forwards.get(key);
          forwards.delete(key);
          server?.close();
          if (server) accept?.();
          else reject?.();
        } else {
          reject?.();
        }
      });
    });
  }

  #onSession(session: Session): void {
    let terminal: PseudoTtyInfo | null = null;
    const env: Record<string, string> = {};
    let program: Program | null = null;
    session.on("env", (accept, _reject, info) => {
      if (VARIABLE_NAME.test(info.key)) env[info.key] = info.val;
      accept?.();
    });
    session.on("pty", (accept, _reject, info) => {
      terminal = info;
      accept?.();
    });
    session.on("window-change", (accept, _reject, info) => {
      if (terminal) Object.assign(terminal, { cols: info.cols, rows: info.rows });
      program?.resize(info.cols, info.rows);
      accept?.();
    });
    session.on("signal", (accept, _reject, info) => {
      if (SIGNALS.has(info.name)) program?.signal(`SIG${info.name}` as NodeJS.Signals);
      accept?.();
    });
    session.on("shell", (accept) => {
      program = this.#run(accept(), null, terminal, env);
    });
    session.on("exec", (accept, _reject, info) => {
      program = this.#run(accept(), info.command, terminal, env);
    });
    session.on("sftp", (accept) => {
      serveSftp(accept(), { root: this.#options.root, log: this.#log });
    });
  }

  #run(channel: ServerChannel, command: string | null, terminal: PseudoTtyInfo | null, requestedEnv: Record<string, string>): Program {
    const base: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.#options.env)) if (value !== undefined) base[name] = value;
    const shell = defaultShell(base);
    if (terminal) {
      const env = { ...base, TERM: terminal.term || "xterm-256color", ...requestedEnv };
      return this.#runInTerminal(channel, { file: shell, args: command === null ? ["-l"] : ["-c", command], cols: terminal.cols || 80, rows: terminal.rows || 24, cwd: this.#options.root, env });
    }
    return this.#runWithPipes(channel, shell, command === null ? ["-l"] : ["-c", command], { ...base, ...requestedEnv });
  }

  #runInTerminal(channel: ServerChannel, options: TerminalOptions): Program {
    const terminal = (this.#options.spawnTerminal ?? spawnTerminal)(options);
    let exited = false;
    const output = new Coalescer((chunk) => {
      if (!channel.write(chunk)) terminal.pause();
    });
    terminal.onData((chunk) => output.push(chunk));
    channel.on("drain", () => terminal.resume());
    channel.on("data", (chunk: Buffer) => terminal.write(chunk));
    channel.on("close", () => {
      if (!exited) terminal.kill("SIGHUP");
    });
    terminal.onExit(({ exitCode, signal }) => {
      exited = true;
      output.flush();
      finish(channel, exitCode, signal);
    });
    return { resize: (cols, rows) => terminal.resize(cols, rows), signal: (signal) => terminal.kill(signal) };
  }

  #runWithPipes(channel: ServerChannel, shell: string, args: string[], env: Record<string, string>): Program {
    const child = spawn(shell, args, { cwd: this.#options.root, env, stdio: "pipe", detached: true });
    let exited = false;
    const signalGroup = (signal: NodeJS.Signals) => {
      if (exited || child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    child.stdin.on("error", () => {});
    child.stdout.pipe(channel, { end: false });
    child.stderr.pipe(channel.stderr, { end: false });
    channel.pipe(child.stdin);
    channel.on("close", () => signalGroup("SIGHUP"));
    child.on("error", (error) => {
      exited = true;
      channel.stderr.write(`kiln: cannot start ${shell}: ${error.message}\n`);
      finish(channel, 127, null);
    });
    child.on("close", (exitCode, signal) => {
      exited = true;
      finish(channel, exitCode, signal);
    });
    return { resize: () => {}, signal: signalGroup };
  }
}

function finish(channel: ServerChannel, exitCode: number | null, signal: NodeJS.Signals | null): void {
  if (channel.destroyed) return;
  if (signal) channel.exit(signal.replace(/^SIG/, ""), false, "");
  else channel.exit(exitCode ?? 0);
  channel.end();
}

/**
 * Joins a TCP socket and an SSH channel both ways. A clean close of either side ends the
 * other (so data still queued is delivered); an error tears both down.
 */
function bridge(socket: net.Socket, channel: ServerChannel | Duplex): void {
  socket.pipe(channel);
  channel.pipe(socket);
  socket.once("close", () => channel.end());
  channel.once("close", () => socket.end());
  socket.on("error", () => channel.destroy());
  channel.on("error", () => socket.destroy());
}
