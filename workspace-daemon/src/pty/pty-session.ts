import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { PtySessionInfo } from "../protocol.ts";
import { Coalescer } from "./coalescer.ts";
import { Scrollback } from "./scrollback.ts";
import type { Terminal, TerminalExit } from "./terminal.ts";

export interface PtySessionOptions {
  id: string;
  command: string | null;
  terminal: Terminal;
  cols: number;
  rows: number;
  scrollbackBytes: number;
  /** A viewer that has not taken output for this long is dropped so the others (and the program) go on. */
  stalledViewerMs: number;
  log: Logger;
  onExit(session: PtySession): void;
}

interface Viewer {
  stream: Duplex;
  /** Set while the viewer's buffer is full; cleared on `drain`. */
  stalledSince: number | null;
}

/**
 * One terminal and everyone watching it. Output goes to the scrollback and to every
 * viewer; a viewer that cannot keep up pauses the terminal (so memory stays bounded
 * and a `yes` flood is throttled, not buffered) until it drains, or is dropped when it
 * stalls too long. The terminal outlives its viewers and ends when its program exits.
 */
export class PtySession {
  readonly id: string;
  readonly command: string | null;
  readonly createdAt = new Date();
  readonly #terminal: Terminal;
  readonly #scrollback: Scrollback;
  readonly #viewers = new Set<Viewer>();
  readonly #options: PtySessionOptions;
  readonly #log: Logger;
  #cols: number;
  #rows: number;
  #exit: TerminalExit | null = null;
  #exitedAt: Date | null = null;
  #paused = false;
  #stallTimer: NodeJS.Timeout | undefined;
  readonly #outgoing = new Coalescer((chunk) => this.#send(chunk));

  constructor(options: PtySessionOptions) {
    this.id = options.id;
    this.command = options.command;
    this.#options = options;
    this.#terminal = options.terminal;
    this.#cols = options.cols;
    this.#rows = options.rows;
    this.#scrollback = new Scrollback(options.scrollbackBytes);
    this.#log = options.log;
    this.#terminal.onData((chunk) => this.#output(chunk));
    this.#terminal.onExit((exit) => this.#exited(exit));
  }

  get running(): boolean {
    return this.#exit === null;
  }

  get exitedAt(): Date | null {
    return this.#exitedAt;
  }

  info(): PtySessionInfo {
    return {
      id: this.id,
      command: this.command,
      pid: this.#terminal.pid,
      cols: this.#cols,
      rows: this.#rows,
      running: this.running,
      exit_code: this.#exit?.exitCode ?? null,
      signal: this.#exit?.signal ?? null,
      viewers: this.#viewers.size,
      scrollback_bytes: this.#scrollback.bytes,
      created_at: this.createdAt.toISOString(),
    };
  }

  /**
   * Replays the scrollback to `stream`, then streams live output to it; what the stream
   * sends is typed into the terminal. Snapshot and subscription happen in one tick, so
   * the viewer sees every byte exactly once. On an exited session the stream gets the
   * scrollback and ends.
   */
  attach(stream: Duplex): void {
    // Output already in the scrollback but not yet sent goes to the current viewers first,
    // so the new one gets it once, in the replay.
    this.#outgoing.flush();
    const replay = this.#scrollback.snapshot();
    if (!this.running) {
      stream.end(replay);
      return;
    }
    const viewer: Viewer = { stream, stalledSince: null };
    this.#viewers.add(viewer);
    if (replay.length > 0 && !stream.write(replay)) this.#stalled(viewer);
    stream.on("drain", () => this.#drained(viewer));
    stream.on("data", (chunk: Buffer) => {
      if (this.running) this.#terminal.write(chunk);
    });
    const detach = () => this.#detach(viewer);
    stream.once("close", detach);
    stream.once("error", detach);
    stream.once("end", () => stream.end());
    this.#log.debug({ session: this.id, viewers: this.#viewers.size }, "pty viewer attached");
  }

  resize(cols: number, rows: number): void {
    this.#cols = cols;
    this.#rows = rows;
    if (this.running) this.#terminal.resize(cols, rows);
  }

  write(data: Buffer | string): void {
    if (this.running) this.#terminal.write(data);
  }

  kill(signal: NodeJS.Signals = "SIGHUP"): void {
    if (this.running) this.#terminal.kill(signal);
  }

  #output(chunk: Buffer): void {
    this.#scrollback.push(chunk);
    if (this.#viewers.size > 0) this.#outgoing.push(chunk);
  }

  #send(chunk: Buffer): void {
    for (const viewer of this.#viewers) {
      if (!viewer.stream.write(chunk)) this.#stalled(viewer);
    }
  }

  #stalled(viewer: Viewer): void {
    viewer.stalledSince ??= Date.now();
    if (!this.#paused) {
      this.#paused = true;
      this.#terminal.pause();
    }
    this.#stallTimer ??= setTimeout(() => this.#dropStalled(), this.#options.stalledViewerMs);
  }

  #drained(viewer: Viewer): void {
    viewer.stalledSince = null;
    this.#resumeIfClear();
  }

  #resumeIfClear(): void {
    for (const viewer of this.#viewers) if (viewer.stalledSince !== null) return;
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    if (this.#paused) {
      this.#paused = false;
      this.#terminal.resume();
    }
  }

  #dropStalled(): void {
    this.#stallTimer = undefined;
    const now = Date.now();
    for (const viewer of this.#viewers) {
      if (viewer.stalledSince !== null && now - viewer.stalledSince >= this.#options.stalledViewerMs) {
        this.#log.warn({ session: this.id }, "pty viewer stalled; dropped");
        viewer.stream.destroy();
        this.#viewers.delete(viewer);
      }
    }
    if ([...this.#viewers].some((viewer) => viewer.stalledSince !== null)) {
      this.#stallTimer = setTimeout(() => this.#dropStalled(), this.#options.stalledViewerMs);
    } else {
      this.#resumeIfClear();
    }
  }

  #detach(viewer: Viewer): void {
    if (!this.#viewers.delete(viewer)) return;
    this.#log.debug({ session: this.id, viewers: this.#viewers.size }, "pty viewer detached");
    this.#resumeIfClear();
  }

  #exited(exit: TerminalExit): void {
    this.#outgoing.flush();
    this.#exit = exit;
    this.#exitedAt = new Date();
    clearTimeout(this.#stallTimer);
    for (const viewer of this.#viewers) viewer.stream.end();
    this.#viewers.clear();
    this.#log.info({ session: this.id, exitCode: exit.exitCode, signal: exit.signal }, "pty session ended");
    this.#options.onExit(this);
  }
}
