import { existsSync } from "node:fs";
import pty from "@lydell/node-pty";

/** The small surface of a pseudo-terminal the rest of the daemon uses; node-pty stays behind it. */
export interface Terminal {
  readonly pid: number;
  write(data: Buffer | string): void;
  resize(cols: number, rows: number): void;
  /** Stops reading the terminal's output: the program blocks once the kernel buffer fills. */
  pause(): void;
  resume(): void;
  kill(signal?: NodeJS.Signals): void;
  onData(listener: (chunk: Buffer) => void): void;
  /** Called once, after the last output has been delivered. */
  onExit(listener: (exit: TerminalExit) => void): void;
}

export interface TerminalExit {
  exitCode: number | null;
  /** Signal name when the program was killed by one. */
  signal: NodeJS.Signals | null;
}

export interface TerminalOptions {
  /** Program and arguments; the login shell when omitted. */
  file?: string;
  args?: string[];
  cols: number;
  rows: number;
  cwd: string;
  env: Record<string, string>;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>([
  [1, "SIGHUP"], [2, "SIGINT"], [3, "SIGQUIT"], [6, "SIGABRT"], [9, "SIGKILL"], [13, "SIGPIPE"], [14, "SIGALRM"], [15, "SIGTERM"],
]);

/** The user's shell: $SHELL when it exists, else bash, else sh. */
export function defaultShell(env: Record<string, string | undefined> = process.env): string {
  for (const candidate of [env.SHELL, "/bin/bash", "/bin/sh"]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  return "/bin/sh";
}

export function spawnTerminal(options: TerminalOptions): Terminal {
  const file = options.file ?? defaultShell(options.env);
  const args = options.file ? (options.args ?? []) : ["-l"];
  // encoding: null keeps output as raw bytes; the browser or SSH client decodes it.
  const child = pty.spawn(file, args, { name: options.env.TERM ?? "xterm-256color", cols: options.cols, rows: options.rows, cwd: options.cwd, env: options.env, encoding: null });
  return {
    pid: child.pid,
    write: (data) => child.write(data as string),
    resize: (cols, rows) => {
      try {
        child.resize(cols, rows);
      } catch {
        // The terminal closed in between; nothing left to resize.
      }
    },
    pause: () => child.pause(),
    resume: () => child.resume(),
    kill: (signal = "SIGHUP") => {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    },
    onData: (listener) => void child.onData((chunk) => listener(chunk as unknown as Buffer)),
    onExit: (listener) => void child.onExit(({ exitCode, signal }) => {
      const name = signal ? (SIGNAL_NAMES.get(signal) ?? "SIGTERM") : null;
      listener({ exitCode: name ? null : exitCode, signal: name });
    }),
  };
}
