export { PtyManager, type PtyManagerOptions } from "./pty-manager.ts";
export { PtySession } from "./pty-session.ts";
export { Scrollback } from "./scrollback.ts";
export { defaultShell, spawnTerminal, type Terminal, type TerminalExit, type TerminalOptions } from "./terminal.ts";
export { Coalescer } from "./coalescer.ts";
