// The daemon's API over a real tailnet: pinned headscale (embedded DERP + STUN on loopback) coordinating
// userspace tailscaled nodes for the control plane and two workspaces, dialed through the control plane's
// SOCKS5 proxy with TailnetTransport. Binaries come from tailnet/scripts/toolchain.mjs (.tools/bin).
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { getRequestListener } from "@hono/node-server";
import {
  CONTROL_PLANE_TAG,
  Headscale,
  TailnetTransport,
  TailscaleNode,
  TunnelError,
  WORKSPACE_TAG,
  createCredential,
  defaultPolicy,
  serveOnTailnet,
  type TailnetAgentServer,
} from "@kiln/tailnet";
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createDaemonApp } from "../api/app.ts";
import type { ProcessResult } from "../protocol.ts";
import { ProcessManager } from "../processes/index.ts";
import { silentLog } from "../testing/fixture.ts";

const bin = resolve(import.meta.dirname, "../../../.tools/bin");
const binaries = { tailscaled: join(bin, "tailscaled"), tailscale: join(bin, "tailscale") };
const available = ["tailscaled", "tailscale", "headscale"].every((name) => existsSync(join(bin, name)));
const strict = process.env.KILN_STRICT === "1";
// Loopback DERP has no TLS.
const derpOverHttp = { TS_DEBUG_USE_DERP_HTTP: "1" };

/** Runs a command to its end, whatever its exit code. */
function runToExit(command: string, args: string[]): Promise<void> {
  return new Promise((resolve) => execFile(command, args, { timeout: 20_000 }, () => resolve()));
}

/** A free loopback port; daemons must listen on ports the ACL policy names. */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", () => done()));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  return typeof address === "object" && address ? address.port : 0;
}

interface Workspace {
  node: TailscaleNode;
  server: TailnetAgentServer;
  processes: ProcessManager;
  root: string;
  credential: string;
  authKey: string;
}

describe.skipIf(!available && !strict)("tailnet transport (headscale + tailscaled on loopback)", () => {
  let dir: string;
  let headscale: Headscale | undefined;
  let controlPlane: TailscaleNode | undefined;
  let transport: TailnetTransport;
  const workspaces = new Map<string, Workspace>();
  const nodes: TailscaleNode[] = [];

  async function startWorkspace(name: string, port: number, env: NodeJS.ProcessEnv): Promise<Workspace> {
    if (!headscale) throw new Error("headscale is not running");
    const key = await headscale.createPreauthKey({ tags: [WORKSPACE_TAG], ephemeral: true });
    const root = await mkdtemp(join(tmpdir(), `kiln-tailnet-${name}-`));
    const processes = new ProcessManager({ root, log: silentLog, killGraceMs: 500 });
    const app = createDaemonApp({ root, processes, log: silentLog, info: { version: "0.0.0-test" } });
    const credential = createCredential();
    const server = await serveOnTailnet({ port, credential, handler: getRequestListener(app.fetch) as never });
    const node = await TailscaleNode.start({ binaries, stateDir: join(dir, name), loginServer: headscale.url, authKey: key.key, hostname: name, env });
    nodes.push(node);
    const workspace = { node, server, processes, root, credential, authKey: key.key };
    workspaces.set(name, workspace);
    return workspace;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-tailnet-"));
    // Daemon ports are picked by the OS; the policy lets the control plane reach exactly those.
    const ports = [await freePort(), await freePort()];
    headscale = await Headscale.start({ binary: join(bin, "headscale"), dataDir: join(dir, "headscale"), policy: defaultPolicy(ports) });
    const controlKey = await headscale.createPreauthKey({ tags: [CONTROL_PLANE_TAG], ephemeral: true });
    controlPlane = await TailscaleNode.start({ binaries, stateDir: join(dir, "control-plane"), loginServer: headscale.url, authKey: controlKey.key, hostname: "kiln-control-plane", socks5: true, env: derpOverHttp });
    nodes.push(controlPlane);
    if (!controlPlane.socks5) throw new Error("control-plane node has no SOCKS5 proxy");
    transport = new TailnetTransport({ socks5: controlPlane.socks5 });
    await Promise.all([
      startWorkspace("ws-direct", ports[0] ?? 0, derpOverHttp),
      startWorkspace("ws-derp", ports[1] ?? 0, { ...derpOverHttp, TS_DEBUG_ALWAYS_USE_DERP: "1" }),
    ]);
    for (const workspace of workspaces.values()) await controlPlane.waitForPeer(workspace.node.ipv4);
    for (const [name, workspace] of workspaces) transport.register(name, { address: workspace.node.ipv4, port: workspace.server.port, credential: workspace.credential });
  }, 120_000);

  afterAll(async () => {
    // Every process is stopped before anything that can throw (removing directories).
    await transport?.close();
    for (const node of nodes) await node.stop();
    await headscale?.stop();
    for (const workspace of workspaces.values()) {
      await workspace.server.close();
      await workspace.processes.shutdown();
    }
    for (const workspace of workspaces.values()) await rm(workspace.root, { recursive: true, force: true, maxRetries: 5 });
    if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  }, 30_000);

  for (const [name, expectedPath] of [["ws-direct", "direct"], ["ws-derp", "derp"]] as const) {
    test(`tool calls and exec over the ${expectedPath} path`, async () => {
      const workspace = workspaces.get(name);
      if (!workspace || !controlPlane) throw new Error("setup failed");
      const connection = await transport.dial(name);
      const written = await connection.fetch("/v1/files/write", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ path: "hello.txt", content: `over ${expectedPath}\n` }),
      });
      expect(written.status).toBe(200);
      const exec = await connection.fetch("/v1/processes", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ command: "cat hello.txt; echo $((6 * 7))" }),
      });
      expect(exec.status).toBe(200);
      const result = (await exec.json()) as ProcessResult;
      expect(result).toMatchObject({ exit_code: 0, output: `over ${expectedPath}\n42\n` });
      expect(await connection.ping()).toBeGreaterThanOrEqual(0);
      // The path the WireGuard packets took.
      expect((await controlPlane.ping(workspace.node.ipv4)).path).toBe(expectedPath);
    }, 30_000);
  }

  test("a request to the daemon's loopback port without the control plane's credential is refused", async () => {
    const workspace = workspaces.get("ws-direct");
    if (!workspace) throw new Error("setup failed");
    // What a process inside the workspace could do: talk h2c to 127.0.0.1:<port> directly.
    const http2 = await import("node:http2");
    const client = http2.connect(`http://127.0.0.1:${workspace.server.port}`);
    try {
      for (const credential of [undefined, "guess", createCredential()]) {
        const status = await new Promise<number>((done, fail) => {
          const headers: Record<string, string> = { ":method": "POST", ":path": "/v1/processes", "content-type": "application/json" };
          if (credential) headers["x-kiln-tailnet-credential"] = credential;
          const stream = client.request(headers);
          stream.on("response", (response) => done(Number(response[":status"])));
          stream.on("error", fail);
          stream.resume();
          stream.end(JSON.stringify({ command: "touch pwned" }));
        });
        expect(status).toBe(401);
      }
    } finally {
      client.close();
    }
    expect(existsSync(join(workspace.root, "pwned"))).toBe(false);
  });

  test("a workspace node cannot reach another workspace's API", async () => {
    const from = workspaces.get("ws-direct");
    const to = workspaces.get("ws-derp");
    if (!from || !to || !headscale) throw new Error("setup failed");
    // A peer node with its own SOCKS5 proxy, tagged as a workspace, tries the other daemon's port.
    const key = await headscale.createPreauthKey({ tags: [WORKSPACE_TAG], ephemeral: true });
    const intruder = await TailscaleNode.start({ binaries, stateDir: join(dir, "intruder"), loginServer: headscale.url, authKey: key.key, hostname: "intruder", socks5: true, env: derpOverHttp });
    nodes.push(intruder);
    if (!intruder.socks5) throw new Error("intruder has no SOCKS5 proxy");
    const sideways = new TailnetTransport({ socks5: intruder.socks5 });
    try {
      sideways.register("ws-derp", { address: to.node.ipv4, port: to.server.port, credential: to.credential });
      const attempt = sideways.dial("ws-derp", { timeoutMs: 4000 }).then((connection) => connection.fetch("/v1/processes", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ command: "touch sideways" }) }));
      await expect(attempt).rejects.toBeInstanceOf(TunnelError);
      expect(existsSync(join(to.root, "sideways"))).toBe(false);
    } finally {
      await sideways.close();
      await intruder.stop();
    }
  }, 40_000);

  test("a process in a workspace cannot give its node the control plane's tag", async () => {
    if (!headscale) throw new Error("setup failed");
    const key = await headscale.createPreauthKey({ tags: [WORKSPACE_TAG], ephemeral: true });
    // The node's socket is reachable from inside the workspace; re-advertising tags through it must not stick.
    const node = await TailscaleNode.start({ binaries, stateDir: join(dir, "retag"), loginServer: headscale.url, authKey: key.key, hostname: "retag", env: derpOverHttp });
    nodes.push(node);
    try {
      await runToExit(binaries.tailscale, ["--socket", node.socket, "up", `--login-server=${headscale.url}`, `--advertise-tags=${CONTROL_PLANE_TAG}`, "--hostname=retag"]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const tags = (await headscale.listNodes()).find((candidate) => candidate.ipAddresses.includes(node.ipv4))?.tags;
      expect(tags).toEqual([WORKSPACE_TAG]);
    } finally {
      await node.stop();
    }
  }, 40_000);

  test("a deleted workspace's node is gone and its key is useless", async () => {
    const workspace = workspaces.get("ws-derp");
    if (!workspace || !headscale) throw new Error("setup failed");
    const address = workspace.node.ipv4;
    expect((await headscale.listNodes()).some((node) => node.ipAddresses.includes(address))).toBe(true);

    expect(await headscale.deleteNodesByAddress(address)).toBe(1);
    expect((await headscale.listNodes()).some((node) => node.ipAddresses.includes(address))).toBe(false);
    await workspace.node.stop();
    transport.unregister("ws-derp");
    await expect(transport.dial("ws-derp", { timeoutMs: 500 })).rejects.toMatchObject({ code: "agent_unreachable" });

    // The preauth key was single-use: joining again with it fails.
    await expect(
      TailscaleNode.start({ binaries, stateDir: join(dir, "rejoin"), loginServer: headscale.url, authKey: workspace.authKey, hostname: "rejoin", env: derpOverHttp, joinTimeoutMs: 8000 }),
    ).rejects.toThrow(/failed to join/);
  }, 40_000);
});
