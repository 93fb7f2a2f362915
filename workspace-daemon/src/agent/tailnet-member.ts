import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import net from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { TailscaleNode, findBinaries, serveOnTailnet, type TailnetAgentServer } from "@kiln/tailnet";
import type { Logger } from "pino";
import { HttpError, type ControlPlaneClient, type TailnetJoin } from "./control-plane.ts";

export interface TailnetMemberOptions {
  client: ControlPlaneClient;
  /** The daemon's API (with its byte streams), served on the tailnet port behind the control plane's credential. */
  handler: (request: Http2ServerRequest, response: Http2ServerResponse) => void;
  stateDir: string;
  /** The daemon's SSH server: served on the tailnet for the owner's own devices when the control plane asks. */
  ssh?: { accept(socket: Duplex): void };
  /** Extra places to look for tailscaled and tailscale before PATH. */
  binDirs: string[];
  /** tailscaled's environment: the workspace's, without the daemon's own settings. */
  environment: NodeJS.ProcessEnv;
  log: Logger;
}

export type TailnetMemberState = "joining" | "joined" | "relay_only" | "stopped";

/**
 * The daemon's membership in the control plane's tailnet. Asks for a key for its build, serves its API on the
 * first free port of the range it is given (loopback; userspace tailscaled forwards tailnet TCP there), joins with
 * a userspace tailscaled, and reports its address. When tailscaled dies it rejoins with a fresh key (its state is
 * in memory only). When the deployment has no tailnet, or this workspace cannot join, the relay keeps serving.
 */
export class TailnetMember {
  readonly #options: TailnetMemberOptions;
  #state: TailnetMemberState = "joining";
  #server: TailnetAgentServer | undefined;
  #sshListener: net.Server | undefined;
  #node: TailscaleNode | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  readonly #stopped = new AbortController();

  constructor(options: TailnetMemberOptions) {
    this.#options = options;
  }

  get state(): TailnetMemberState {
    return this.#state;
  }

  start(): void {
    this.#loop ??= this.#run().catch((error: unknown) => this.#options.log.error({ err: error }, "tailnet membership failed"));
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stopped.abort();
    await this.#node?.stop();
    await this.#server?.close();
    await new Promise<void>((resolve) => (this.#sshListener ? this.#sshListener.close(() => resolve()) : resolve()));
    await this.#loop;
    this.#state = "stopped";
  }

  async #run(): Promise<void> {
    const { client, log } = this.#options;
    let delay = 500;
    while (!this.#stopping) {
      this.#state = "joining";
      let material: TailnetJoin;
      try {
        material = await client.tailnetJoin();
      } catch (error) {
        if (error instanceof HttpError && (error.status === 409 || error.status === 404)) {
          log.info("the control plane runs no tailnet; serving over the relay only");
          this.#state = "relay_only";
          return;
        }
        if (error instanceof HttpError && error.status === 401) {
          this.#state = "relay_only";
          return;
        }
        log.warn({ err: error }, "could not get a tailnet key; retrying");
        await this.#pause((delay = Math.min(delay * 2, 30_000)));
        continue;
      }
      const binaries = findBinaries(["tailscaled", "tailscale"] as const, this.#options.binDirs);
      if (binaries.missing.length > 0) {
        const message = `${binaries.missing.join(" and ")} not found on PATH (or KILN_TAILSCALE_BIN_DIR); install Tailscale in the workspace image to use the tailnet`;
        log.warn(message + "; serving over the relay only");
        await client.reportTailnet({ error: message }).catch(() => undefined);
        this.#state = "relay_only";
        return;
      }
      try {
        this.#server ??= await this.#listen(material);
        if (material.ssh_ports && this.#options.ssh) this.#sshListener ??= await this.#listenSsh(material.ssh_ports, this.#options.ssh);
        const node = await TailscaleNode.start({
          binaries: { tailscaled: binaries.found.tailscaled!, tailscale: binaries.found.tailscale! },
          stateDir: join(this.#options.stateDir, "tailscale"),
          loginServer: material.login_server,
          authKey: material.auth_key,
          hostname: material.hostname,
          baseEnv: this.#options.environment,
          env: material.derp_over_http ? { TS_DEBUG_USE_DERP_HTTP: "1" } : {},
        });
        this.#node = node;
        if (this.#stopping) {
          await node.stop();
          break;
        }
        const sshAddress = this.#sshListener?.address();
        const sshPort = typeof sshAddress === "object" && sshAddress ? sshAddress.port : undefined;
        await client.reportTailnet({ address: node.ipv4, port: this.#server.port, ...(sshPort ? { ssh_port: sshPort } : {}) });
        this.#state = "joined";
        log.info({ address: node.ipv4, port: this.#server.port, sshPort }, "joined the tailnet");
        delay = 500;
        await node.lost();
        if (this.#stopping) break;
        log.warn({ running: node.running, log: node.log.slice(-1000) }, "tailscaled exited or was logged out; rejoining the tailnet");
        await node.stop();
        await this.#pause(delay);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log.warn({ err: error }, "could not join the tailnet; the relay serves meanwhile");
        await client.reportTailnet({ error: message.slice(0, 4000) }).catch(() => undefined);
        await this.#node?.stop();
        await this.#pause((delay = Math.min(delay * 2, 30_000)));
      }
    }
  }

  /** The first free port of the range: several daemons can share a host (the local provisioner). */
  async #listen(material: TailnetJoin): Promise<TailnetAgentServer> {
    const { first, last } = material.ports;
    for (let port = first; port <= last; port++) {
      try {
        return await serveOnTailnet({ port, credential: material.credential, handler: this.#options.handler, log: this.#options.log });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
      }
    }
    throw new Error(`no free port in ${first}-${last} to serve the tailnet API on`);
  }

  /**
   * SSH for the owner's devices: the ACL policy lets only them reach these ports over the tailnet, and a process in
   * the workspace that connects on loopback gains nothing it does not already have.
   */
  async #listenSsh(ports: { first: number; last: number }, ssh: { accept(socket: Duplex): void }): Promise<net.Server> {
    for (let port = ports.first; port <= ports.last; port++) {
      const server = net.createServer((socket) => ssh.accept(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(port, "127.0.0.1", () => resolve());
        });
        return server;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
      }
    }
    throw new Error(`no free port in ${ports.first}-${ports.last} to serve SSH on`);
  }

  async #pause(ms: number): Promise<void> {
    if (!this.#stopping) await sleep(ms, undefined, { signal: this.#stopped.signal }).catch(() => undefined);
  }
}
