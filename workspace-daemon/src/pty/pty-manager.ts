import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import type { Logger } from "pino";
import { ConflictError, InvalidRequestError, NotFoundError } from "../errors.ts";
import { resolvePath } from "../files/paths.ts";
import { LIMITS, type CreatePtyRequest } from "../protocol.ts";
import { PtySession } from "./pty-session.ts";
import { spawnTerminal, type Terminal, type TerminalOptions } from "./terminal.ts";

export interface PtyManagerOptions {
  /** Directory a request's relative `workdir` resolves against, and the default one. */
  root: string;
  log: Logger;
  /** Environment the shells inherit (credentials already removed). */
  env: NodeJS.ProcessEnv;
  scrollbackBytes?: number;
  maxSessions?: number;
  /** How long an exited session stays readable (its scrollback and exit code). */
  keepExitedForMs?: number;
  stalledViewerMs?: number;
  /** Starts the terminal; node-pty by default. */
  spawn?: (options: TerminalOptions) => Terminal;
}

/** The daemon's terminal sessions, by id. */
export class PtyManager {
  readonly #options: Required<PtyManagerOptions>;
  readonly #log: Logger;
  readonly #sessions = new Map<string, PtySession>();

  constructor(options: PtyManagerOptions) {
    this.#options = {
      scrollbackBytes: LIMITS.ptyScrollbackBytes,
      maxSessions: LIMITS.ptyMaxSessions,
      keepExitedForMs: 5 * 60 * 1000,
      stalledViewerMs: 30_000,
      spawn: spawnTerminal,
      ...options,
    };
    this.#log = options.log.child({ module: "pty" });
  }

  /** The environment a human's terminal gets: the daemon's (minus credentials) with a capable TERM. */
  terminalEnvironment(extra: Record<string, string> = {}): Record<string, string> {
    const environment: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.#options.env)) if (value !== undefined) environment[name] = value;
    return { ...environment, TERM: "xterm-256color", COLORTERM: "truecolor", ...extra };
  }

  async create(request: CreatePtyRequest): Promise<PtySession> {
    this.#prune();
    const running = [...this.#sessions.values()].filter((session) => session.running).length;
    if (running >= this.#options.maxSessions) {
      throw new ConflictError("too_many_sessions", `at most ${this.#options.maxSessions} terminal sessions may run at once; close one first`, { limit: this.#options.maxSessions });
    }
    if (request.id !== undefined && this.#sessions.has(request.id)) {
      throw new ConflictError("session_exists", `terminal session '${request.id}' already exists; attach to it instead`, { id: request.id });
    }
    const cwd = request.workdir ? resolvePath(this.#options.root, request.workdir) : this.#options.root;
    const isDirectory = await stat(cwd).then((stats) => stats.isDirectory(), () => false);
    if (!isDirectory) throw new InvalidRequestError("invalid_workdir", `workdir is not an existing directory: ${request.workdir}`, { workdir: request.workdir });
    const id = request.id ?? randomUUID();
    const env = this.terminalEnvironment(request.env);
    const terminal = this.#options.spawn({
      cols: request.cols,
      rows: request.rows,
      cwd,
      env,
      ...(request.command ? { file: "/bin/sh", args: ["-c", request.command] } : {}),
    });
    const session = new PtySession({
      id,
      command: request.command ?? null,
      terminal,
      cols: request.cols,
      rows: request.rows,
      scrollbackBytes: this.#options.scrollbackBytes,
      stalledViewerMs: this.#options.stalledViewerMs,
      log: this.#log,
      onExit: () => this.#prune(),
    });
    this.#sessions.set(id, session);
    this.#log.info({ session: id, pid: terminal.pid, command: request.command ?? null }, "pty session started");
    return session;
  }

  get(id: string): PtySession {
    const session = this.#sessions.get(id);
    if (!session) throw new NotFoundError("pty_not_found", `no terminal session '${id}'`, { id });
    return session;
  }

  list(): PtySession[] {
    this.#prune();
    return [...this.#sessions.values()];
  }

  /** Ends a session: its program gets SIGHUP, as when a terminal closes. The session is forgotten. */
  kill(id: string): PtySession {
    const session = this.get(id);
    session.kill("SIGHUP");
    this.#sessions.delete(id);
    return session;
  }

  shutdown(): void {
    for (const session of this.#sessions.values()) session.kill("SIGHUP");
    this.#sessions.clear();
  }

  #prune(): void {
    const cutoff = Date.now() - this.#options.keepExitedForMs;
    for (const [id, session] of this.#sessions) {
      if (session.exitedAt && session.exitedAt.getTime() < cutoff) this.#sessions.delete(id);
    }
  }
}
