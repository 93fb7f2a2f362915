import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { ManagedProcess, freePort, run, runToExit, waitFor } from "./process.ts";

export interface TailscaleBinaries {
  tailscaled: string;
  tailscale: string;
}

export interface TailscaleNodeOptions {
  binaries: TailscaleBinaries;
  /** Holds the node's socket and state directory. */
  stateDir: string;
  loginServer: string;
  authKey: string;
  hostname: string;
  /** Serve a SOCKS5 proxy on loopback (the control plane dials daemons through it): on a free port, or this one. */
  socks5?: boolean | number;
  /** The environment tailscaled starts from (process.env by default); `env` is laid over it. */
  baseEnv?: NodeJS.ProcessEnv;
  /** Loopback DERP without TLS needs TS_DEBUG_USE_DERP_HTTP=1; TS_DEBUG_ALWAYS_USE_DERP=1 forces the relay path. */
  env?: NodeJS.ProcessEnv;
  joinTimeoutMs?: number;
}

export interface PeerPath {
  /** "direct" when WireGuard packets flow peer to peer, "derp" when relayed. */
  path: "direct" | "derp";
  endpoint: string;
  roundTripMs: number;
}

/** A Unix socket path must fit in sockaddr_un (108 bytes); a deep state dir gets one in the temp dir instead. */
function socketPath(stateDir: string): string {
  const inside = path.join(stateDir, "tailscaled.sock");
  if (Buffer.byteLength(inside) <= 100) return inside;
  return path.join(os.tmpdir(), `kiln-tailscaled-${createHash("sha256").update(path.resolve(stateDir)).digest("hex").slice(0, 16)}.sock`);
}

/** A userspace-networking tailscaled joined to a tailnet. Inbound tailnet TCP is forwarded to 127.0.0.1 on the same port. */
export class TailscaleNode {
  readonly hostname: string;
  readonly socks5: { host: string; port: number } | undefined;
  readonly #options: TailscaleNodeOptions;
  readonly #socket: string;
  #process: ManagedProcess | undefined;
  #addresses: string[] = [];

  private constructor(options: TailscaleNodeOptions, socks5Port: number | undefined) {
    this.#options = options;
    this.hostname = options.hostname;
    this.#socket = socketPath(options.stateDir);
    this.socks5 = socks5Port === undefined ? undefined : { host: "127.0.0.1", port: socks5Port };
  }

  /** Starts tailscaled and joins with the auth key; stops it again when joining fails. */
  static async start(options: TailscaleNodeOptions): Promise<TailscaleNode> {
    mkdirSync(options.stateDir, { recursive: true });
    const node = new TailscaleNode(options, typeof options.socks5 === "number" ? options.socks5 : options.socks5 ? await freePort() : undefined);
    try {
      await node.#startDaemon();
      // From a file, not argv: another process on the host (in a workspace: any) can read a command line.
      const keyFile = path.join(options.stateDir, "authkey");
      writeFileSync(keyFile, options.authKey, { mode: 0o600 });
      try {
        await run(
          options.binaries.tailscale,
          ["--socket", node.#socket, "up", `--login-server=${options.loginServer}`, `--auth-key=file:${keyFile}`, `--hostname=${options.hostname}`, `--timeout=${Math.round((options.joinTimeoutMs ?? 20_000) / 1000)}s`],
          node.#env(),
          (options.joinTimeoutMs ?? 20_000) + 5000,
        );
      } finally {
        rmSync(keyFile, { force: true });
      }
      node.#addresses = (await node.#cli(["ip"])).split("\n").map((line) => line.trim()).filter(Boolean);
    } catch (error) {
      await node.stop();
      throw new Error(`tailscale node ${options.hostname} failed to join ${options.loginServer}: ${error instanceof Error ? error.message : String(error)}`);
    }
    return node;
  }

  get running(): boolean {
    return this.#process?.running ?? false;
  }

  /** tailscaled's control socket (for `tailscale --socket … nc`, e.g. as an SSH ProxyCommand). */
  get socket(): string {
    return this.#socket;
  }

  /** Settles when tailscaled exits (at once when it never started). */
  get exited(): Promise<unknown> {
    return this.#process?.exited ?? Promise.resolve(null);
  }

  /**
   * Settles when the node is gone: tailscaled exited, or it stopped running (logged out: its node was deleted or
   * expired) on two checks in a row. Whoever owns the node then rejoins with a fresh key.
   */
  lost(checkEveryMs = 5_000): Promise<void> {
    return new Promise<void>((resolve) => {
      let misses = 0;
      const timer = setInterval(() => {
        void this.status().then(
          (status) => (misses = status.BackendState === "Running" ? 0 : misses + 1),
          () => (misses += 1),
        ).then(() => {
          if (misses >= 2) finish();
        });
      }, checkEveryMs);
      timer.unref();
      const finish = () => {
        clearInterval(timer);
        resolve();
      };
      void this.exited.then(finish);
    });
  }

  /** The tail of tailscaled's log, for diagnostics. */
  get log(): string {
    return this.#process?.output ?? "";
  }

  /** The node's tailnet IPv4 address. */
  get ipv4(): string {
    const address = this.#addresses.find((candidate) => candidate.includes("."));
    if (!address) throw new Error(`tailscale node ${this.hostname} has no IPv4 address`);
    return address;
  }

  get addresses(): readonly string[] {
    return this.#addresses;
  }

  /**
   * A disco ping to a peer: which path the last pong took and how long. `tailscale ping` keeps pinging
   * until the path is direct or `count` runs out, and exits 1 when it stayed on DERP; a pong still counts.
   */
  async ping(address: string, count = 5): Promise<PeerPath> {
    const result = await runToExit(this.#options.binaries.tailscale, ["--socket", this.#socket, "ping", "-c", String(count), "--timeout=3s", address]);
    // "pong from ws1 (100.64.0.2) via 127.0.0.1:42076 in 1ms" or "... via DERP(kiln) in 2ms"
    const pongs = [...result.stdout.matchAll(/pong from .* via (\S+) in ([\d.]+)(ms|s|µs)/g)];
    const match = pongs.at(-1);
    if (!match) throw new Error(`no pong from ${address}: ${(result.stderr || result.stdout).trim().slice(-1000)}`);
    const [, endpoint = "", value = "0", unit = "ms"] = match;
    const roundTripMs = Number(value) * (unit === "s" ? 1000 : unit === "µs" ? 0.001 : 1);
    return { path: endpoint.startsWith("DERP(") ? "derp" : "direct", endpoint, roundTripMs };
  }

  /** `tailscale status --json`, parsed. */
  async status(): Promise<{ BackendState: string; Peer?: Record<string, { HostName: string; TailscaleIPs: string[]; Online: boolean; CurAddr: string; Relay: string }> }> {
    return JSON.parse(await this.#cli(["status", "--json"]));
  }

  /**
   * Waits until this node's netmap holds a peer with `address` and a home DERP region: a freshly joined peer takes a
   * few seconds to pick one, and until then WireGuard has no address to send its handshake to.
   */
  async waitForPeer(address: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(
      `peer ${address} in ${this.hostname}'s netmap`,
      async () => {
        const peers = Object.values((await this.status()).Peer ?? {});
        return peers.some((peer) => peer.TailscaleIPs.includes(address) && (peer.Relay !== "" || peer.CurAddr !== "")) ? true : undefined;
      },
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await this.#process?.stop();
  }

  async #startDaemon(): Promise<void> {
    const args = [
      "--tun=userspace-networking",
      "--state=mem:",
      `--socket=${this.#socket}`,
      `--statedir=${this.#options.stateDir}`,
      "--no-logs-no-support",
      "--port=0",
    ];
    if (this.socks5) args.push(`--socks5-server=${this.socks5.host}:${this.socks5.port}`);
    const managed = new ManagedProcess(this.#options.binaries.tailscaled, args, this.#env());
    this.#process = managed;
    await waitFor(
      "tailscaled to answer on its socket",
      async () => {
        await this.#cli(["status", "--json"]);
        return true;
      },
      10_000,
      () => (managed.running ? undefined : `tailscaled exited: ${managed.output.trim().slice(-2000)}`),
    );
  }

  #env(): NodeJS.ProcessEnv {
    return { ...(this.#options.baseEnv ?? process.env), ...this.#options.env };
  }

  #cli(args: string[]): Promise<string> {
    return run(this.#options.binaries.tailscale, ["--socket", this.#socket, ...args], this.#env());
  }
}
