import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { ProvisionError, type ProvisionRequest, type ProvisionResult, type Provisioner } from "../types.ts";

/** What a local build leaves behind: the daemon's pid and the workspace's directory. */
export const LocalState = z.object({ pid: z.number().int().nullable(), directory: z.string() });
export type LocalState = z.infer<typeof LocalState>;

export interface LocalProvisionerOptions {
  /** Workspaces live in <dataDir>/workspaces/<id>. */
  dataDir: string;
  /** argv that starts kiln-daemon, e.g. [process.execPath, ".../kiln-daemon.mjs"], or how to get it (asked at each start). */
  daemonCommand: string[] | (() => Promise<string[]>);
  /** Extra variables for the daemon (not its children: the daemon drops KILN_* from theirs). */
  daemonEnvironment?: Record<string, string>;
  /** How long a daemon gets to shut down before SIGKILL. */
  stopTimeoutMs?: number;
}

/**
 * The embedded provisioner: a workspace is a directory plus a kiln-daemon process. The daemon is started
 * detached, in its own session, so it outlives a restart of the server exactly as a remote workspace would.
 */
export function createLocalProvisioner(options: LocalProvisionerOptions): Provisioner {
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;

  const workspaceDirectory = (workspaceId: string) => path.join(options.dataDir, "workspaces", workspaceId);

  async function stopDaemon(state: LocalState | null, request: ProvisionRequest): Promise<void> {
    if (!state?.pid || !isAlive(state.pid)) return;
    request.log({ level: "info", stage: "stop", output: `stopping kiln-daemon (pid ${state.pid})` });
    signalGroup(state.pid, "SIGTERM");
    const deadline = Date.now() + stopTimeoutMs;
    while (isAlive(state.pid) && Date.now() < deadline) await sleep(25);
    if (isAlive(state.pid)) {
      request.log({ level: "warn", stage: "stop", output: `kiln-daemon did not exit within ${stopTimeoutMs} ms; killing it` });
      signalGroup(state.pid, "SIGKILL");
    }
  }

  return {
    kind: "local",
    async provision(request) {
      const previous = LocalState.safeParse(request.previousState);
      const state = previous.success ? previous.data : null;
      const directory = state?.directory ?? workspaceDirectory(request.workspace.id);

      if (request.transition === "start") {
        await stopDaemon(state, request);
        const home = path.join(directory, "home");
        await mkdir(home, { recursive: true });
        if (!request.agentToken) throw new ProvisionError("start build has no agent token");
        const logFile = path.join(directory, "daemon.log");
        request.log({ level: "info", stage: "start", output: `starting kiln-daemon in ${home}` });
        const command = typeof options.daemonCommand === "function" ? await options.daemonCommand() : options.daemonCommand;
        const pid = startDaemon(command, home, logFile, {
          ...options.daemonEnvironment,
          KILN_AGENT_TOKEN: request.agentToken,
          KILN_URL: request.accessUrl,
          KILN_WORKDIR: home,
          KILN_WORKSPACE_NAME: request.workspace.name,
          HOME: home,
        });
        request.log({ level: "info", stage: "start", output: `kiln-daemon running (pid ${pid}); logs in ${logFile}` });
        return { state: { pid, directory } satisfies LocalState };
      }

      await stopDaemon(state, request);
      if (request.transition === "delete") {
        request.log({ level: "info", stage: "delete", output: `removing ${directory}` });
        await rm(directory, { recursive: true, force: true });
        return { state: null };
      }
      return { state: { pid: null, directory } satisfies LocalState };
    },
  } satisfies Provisioner & { provision(request: ProvisionRequest): Promise<ProvisionResult> };
}

function startDaemon(command: string[], cwd: string, logFile: string, environment: Record<string, string>): number {
  const [executable, ...args] = command;
  if (!executable) throw new ProvisionError("no daemon command configured");
  const output = openSync(logFile, "a");
  try {
    const child = spawn(executable, args, {
      cwd,
      detached: true,
      stdio: ["ignore", output, output],
      env: { ...inheritedEnvironment(), ...environment },
    });
    if (child.pid === undefined) throw new ProvisionError(`could not start ${executable}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(output);
  }
}

// The server's own secrets (database URL, provider keys) must not leak into a workspace.
function inheritedEnvironment(): Record<string, string> {
  const keep = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "TMPDIR", "NODE_OPTIONS"];
  const result: Record<string, string> = {};
  for (const key of keep) {
    const value = process.env[key];
    if (value !== undefined) result[key] = value;
  }
  return result;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
