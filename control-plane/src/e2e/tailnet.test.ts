import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import path from "node:path";
import { Headscale, TailscaleNode, defaultPolicy, findBinaries, socks5Connect } from "@kiln/tailnet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServerConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import { startServer, type RunningServer } from "../server/server.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { kiln, killDaemonsOf, startKilnServer, temporaryDirectory, type KilnServerProcess } from "../testing/kiln-process.ts";
import { freePort } from "../testing/postgres-cluster.ts";
import { eventually, run } from "../testing/processes.ts";

/**
 * `kiln server --tailnet` end to end: an embedded headscale with its DERP and STUN on loopback, the control
 * plane's userspace tailscaled, and real kiln-daemons in local workspaces joining with their own tailscaled.
 * The first server runs without relay fallback, so every call below can only have crossed the tailnet.
 */
const available = findBinaries(["tailscaled", "tailscale", "headscale"]).missing.length === 0;
const strict = process.env.KILN_STRICT === "1";

/** The environment of the kiln-daemon serving `workspaceDirectory` (its token, for the agent-side checks). */
function daemonEnvironment(url: string, workspaceDirectory: string): Record<string, string> {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const variables = Object.fromEntries(readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").filter(Boolean).map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
      if (variables.KILN_URL === url && variables.KILN_WORKDIR === workspaceDirectory) return { ...variables, PID: entry };
    } catch {
      // gone, or not ours to read
    }
  }
  throw new Error(`no kiln-daemon for ${workspaceDirectory}`);
}

/** The local provisioner's log of a workspace's daemon, for failure messages. */
function daemonLog(workspaceDirectory: string): string {
  try {
    return readFileSync(path.join(workspaceDirectory, "..", "daemon.log"), "utf8").slice(-4000);
  } catch (error) {
    return String(error);
  }
}

/** tailscaled processes whose state dir lives under `directory`. */
function tailscaledUnder(directory: string): number[] {
  const output = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return output.split("\n").filter((line) => line.includes("tailscaled") && line.includes(`--statedir=${directory}`)).map((line) => Number(line.trim().split(/\s+/)[0]));
}

describe.skipIf(!available && !strict)("kiln server --tailnet (embedded headscale, DERP, userspace tailscaled)", () => {
  let database: TestDatabase;
  let server: RunningServer;
  let url: string;
  let token: string;
  let port: number;
  const dataDir = temporaryDirectory("kiln-tailnet-server-");
  const config = temporaryDirectory("kiln-tailnet-cli-");
  const eveConfig = temporaryDirectory("kiln-tailnet-eve-");
  const devices: TailscaleNode[] = [];
  const cli = (args: string[], timeoutMs?: number) => kiln(args, { configDir: config.path, timeoutMs });
  const api = async (method: string, route: string, body?: unknown, as = token) => {
    const response = await fetch(`${url}${route}`, { method, headers: { authorization: `Bearer ${as}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await response.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // NDJSON or empty
    }
    return { status: response.status, body: parsed, text };
  };
  const agentOf = async (workspace: string) => (await api("GET", `/api/v1/workspaces/${workspace}/agent-info`)).body.agent;
  /** The agent once it has reported its tailnet endpoint (each test can run alone). */
  const joinedAgentOf = (workspace: string) => eventually(async () => {
    const current = await agentOf(workspace);
    expect(current.tailnet, daemonLog(current.directory)).not.toBeNull();
    return current;
  }, 20_000);
  const start = () => startServer(
    parseServerConfig({ dataDir: dataDir.path, listen: `127.0.0.1:${port}`, postgresUrl: database.url ?? undefined, logLevel: "silent", tailnet: true, tailnetRelayFallback: false, tailnetDeviceSsh: true }),
    createLogger({ level: process.env.KILN_TEST_LOG ?? "silent" }),
  );

  beforeAll(async () => {
    database = await createTestDatabase();
    // A fixed port: the daemons and the CLI keep using this URL across the restart below.
    port = await freePort();
    server = await start();
    url = server.accessUrl;
    const login = await cli(["login", url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"]);
    expect(login.code, login.stderr).toBe(0);
    token = JSON.parse(readFileSync(path.join(config.path, "session.json"), "utf8")).token;
    const created = await cli(["create", "one", "--template", "local"], 120_000);
    expect(created.code, created.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    for (const device of devices) await device.stop();
    await server?.close();
    if (url) killDaemonsOf(url);
    await database?.close();
    dataDir.remove();
    config.remove();
    eveConfig.remove();
  });

  it("the daemon joins and reports its tailnet endpoint; health shows the tailnet", async () => {
    const agent = await eventually(async () => {
      const current = await agentOf("one");
      expect(current.tailnet, daemonLog(current.directory)).not.toBeNull();
      return current;
    }, 20_000);
    expect(agent.tailnet.address).toMatch(/^100\.\d+\.\d+\.\d+$/);
    expect(agent.tailnet.port).toBeGreaterThanOrEqual(46100);
    expect(agent.tailnet_error).toBeNull();
    const health = await (await fetch(`${url}/healthz`)).json();
    expect(health).toMatchObject({ status: "ok", tailnet: { mode: "embedded", coordinator: "ok", node: "running" } });
    const nodes = await server.tailnet!.coordinator.listNodes();
    expect(nodes.find((node) => node.ipAddresses.includes(agent.tailnet.address))?.tags).toEqual(expect.arrayContaining(["tag:kiln-workspace"]));
  }, 60_000);

  it("runs tool calls, exec and SSH over the tailnet (no relay fallback), and kiln ping shows a direct path", async () => {
    const written = await api("POST", "/api/v1/workspaces/one/agent/v1/files/write", { path: "hello.txt", content: "over wireguard\n" });
    expect(written.status, written.text).toBe(200);
    const read = await api("GET", "/api/v1/workspaces/one/agent/v1/files/read?path=hello.txt");
    expect(read.status, read.text).toBe(200);
    expect(read.body.content).toContain("over wireguard");
    const exec = await cli(["exec", "one", "--", "sh", "-c", "cat hello.txt; exit 3"]);
    expect(exec).toMatchObject({ code: 3, stdout: "over wireguard\n" });
    expect(await cli(["ssh", "one", "--", "echo", "ssh-over-tailnet"])).toMatchObject({ code: 0, stdout: "ssh-over-tailnet\n" });
    // The relay is connected too, but the tunnel chose the tailnet.
    expect(server.relay.isConnected((await agentOf("one")).id)).toBe(true);

    const ping = await cli(["ping", "one", "-c", "1", "-o", "json"], 60_000);
    expect(ping.code, ping.stderr).toBe(0);
    const result = JSON.parse(ping.stdout.trim());
    expect(result).toMatchObject({ transport: "tailnet", path: "direct", tailnet: { address: (await agentOf("one")).tailnet.address } });
    expect(result.round_trip_ms).toBeGreaterThan(0);
    const text = await cli(["ping", "one", "-c", "1"], 60_000);
    expect(text.stdout).toMatch(/^pong from one over tailnet direct via \S+ \(100\.[\d.]+:\d+, wireguard <?[\d.]+ ms\) in [\d.]+ ms$/m);
  }, 120_000);

  it("refuses requests to the daemon's tailnet port without the control plane's credential, and bad reports", async () => {
    const agent = await joinedAgentOf("one");
    const session = http2.connect(`http://127.0.0.1:${agent.tailnet.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const request = session.request({ ":path": "/v1/files/read?path=hello.txt" });
        request.on("response", (headers) => resolve(Number(headers[":status"])));
        request.on("error", reject);
        request.end();
      });
      expect(status).toBe(401);
    } finally {
      session.close();
    }
    const daemon = daemonEnvironment(url, agent.directory);
    const report = (body: unknown) => fetch(`${url}/api/v1/agent/tailnet`, { method: "POST", headers: { authorization: `Bearer ${daemon.KILN_AGENT_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const outside = await report({ address: agent.tailnet.address, port: 22 });
    expect(outside.status).toBe(400);
    expect(await outside.json()).toMatchObject({ error: { details: { field: "port" } } });
    const notAnAddress = await report({ address: "example.com", port: 46100 });
    expect(notAnAddress.status).toBe(400);
    expect(JSON.stringify(await notAnAddress.json())).toContain("address");
    // A real tailnet address, but not this agent's node (the control plane's own): refused, nothing removed.
    const controlPlaneAddress = (await server.tailnet!.health()).node.address!;
    const someoneElses = await report({ address: controlPlaneAddress, port: 46100 });
    expect(someoneElses.status).toBe(400);
    expect(await someoneElses.json()).toMatchObject({ error: { details: { field: "address", reason: "is not the tailnet address of the node this agent joined as" } } });
    expect((await server.tailnet!.coordinator.listNodes()).some((node) => node.ipAddresses.includes(controlPlaneAddress))).toBe(true);
    // Nothing was lost: the endpoint is unchanged.
    expect((await agentOf("one")).tailnet).toEqual(agent.tailnet);
  }, 60_000);

  it("a user's own device reaches that user's workspaces over SSH (real OpenSSH), and nothing else", async () => {
    const agent = await eventually(async () => {
      const current = await agentOf("one");
      expect(current.tailnet).not.toBeNull();
      return current;
    }, 20_000);
    expect(agent.tailnet.ssh_port).toBeGreaterThanOrEqual(46200);
    const workspaceNode = (await server.tailnet!.coordinator.listNodes()).find((node) => node.ipAddresses.includes(agent.tailnet.address));
    expect(workspaceNode?.tags).toEqual(expect.arrayContaining(["tag:kiln-workspace", expect.stringMatching(/^tag:kiln-owner-[0-9a-f]{32}$/)]));
    const binaries = findBinaries(["tailscaled", "tailscale"]).found as { tailscaled: string; tailscale: string };
    const joinDevice = async (name: string, configDir: string) => {
      const issued = await kiln(["tailnet", "device-key", "-o", "json"], { configDir });
      expect(issued.code, issued.stderr).toBe(0);
      const key = JSON.parse(issued.stdout) as { login_server: string; auth_key: string; command: string };
      expect(key.command).toBe(`tailscale up --login-server=${key.login_server} --auth-key=${key.auth_key}`);
      const node = await TailscaleNode.start({ binaries, stateDir: path.join(dataDir.path, "devices", name), loginServer: key.login_server, authKey: key.auth_key, hostname: name, socks5: true, env: { TS_DEBUG_USE_DERP_HTTP: "1" } });
      devices.push(node);
      return node;
    };
    const sshVia = (device: TailscaleNode, port: number, timeoutMs: number) => run("ssh", [
      "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
      "-o", `ProxyCommand=${binaries.tailscale} --socket ${device.socket} nc %h %p`, "-p", String(port), agent.tailnet.address, "echo from-my-laptop",
    ], { timeoutMs });

    // Refused by the packet filter: the connection fails or never answers; either way no command runs.
    const expectNoSession = async (attempt: Promise<{ code: number | null; stdout: string }>) => {
      const outcome = await attempt.catch((error: Error) => error);
      if (outcome instanceof Error) expect(outcome.message).toMatch(/timed out/);
      else expect(outcome).toMatchObject({ code: 255, stdout: "" });
    };
    const mine = await joinDevice("my-laptop", config.path);
    await mine.waitForPeer(agent.tailnet.address);
    expect(await sshVia(mine, agent.tailnet.ssh_port, 30_000)).toMatchObject({ code: 0, stdout: "from-my-laptop\n" });
    // Not the daemon's API port: that is the control plane's alone. (The SSH port, through the same proxy, is the
    // positive control: it answers with its banner.)
    const banner = await socks5Connect(mine.socks5!, { host: agent.tailnet.address, port: agent.tailnet.ssh_port }, 10_000);
    expect(await new Promise<string>((resolve, reject) => {
      // Bounded, so a banner that never comes fails here, by name, rather than at the test's timeout.
      const timer = setTimeout(() => reject(new Error("no SSH banner within 10 s through the device's SOCKS proxy")), 10_000);
      banner.once("data", (chunk: Buffer) => {
        clearTimeout(timer);
        resolve(chunk.toString("utf8"));
      });
    })).toMatch(/^SSH-2\.0-/);
    banner.destroy();
    await expect(socks5Connect(mine.socks5!, { host: agent.tailnet.address, port: agent.tailnet.port }, 5_000)).rejects.toThrow();

    const created = await api("POST", "/api/v1/users", { email: "eve@example.com", username: "eve", password: "password-123" });
    expect(created.status, created.text).toBe(201);
    expect((await kiln(["login", url, "--login", "eve", "--password", "password-123"], { configDir: eveConfig.path })).code).toBe(0);
    const eves = await joinDevice("eves-laptop", eveConfig.path);
    // Eve's device is on the tailnet but is not given the workspace at all.
    const eveSees = Object.values((await eves.status()).Peer ?? {}).flatMap((peer) => peer.TailscaleIPs);
    expect(eveSees).not.toContain(agent.tailnet.address);
    await expectNoSession(sshVia(eves, agent.tailnet.ssh_port, 8_000));

    // Suspending Eve takes her devices off the tailnet.
    const eveId = created.body.id as string;
    const deviceUserOf = (id: string) => `kiln-user-${id.replace(/-/g, "")}`;
    expect((await server.tailnet!.coordinator.listNodes()).some((node) => node.user === deviceUserOf(eveId))).toBe(true);
    expect((await api("PATCH", `/api/v1/users/${eveId}`, { suspended: true })).status).toBe(200);
    expect((await server.tailnet!.coordinator.listNodes()).some((node) => node.user === deviceUserOf(eveId))).toBe(false);
  }, 120_000);

  it("recovers when the workspace's tailscaled is killed: the daemon rejoins, the old node is removed", async () => {
    const before = await joinedAgentOf("one");
    const killed = tailscaledUnder(path.join(before.directory, ".kiln"));
    expect(killed).toHaveLength(1);
    process.kill(killed[0]!, "SIGKILL");
    const after = await eventually(async () => {
      const current = await agentOf("one");
      expect(current.tailnet.address).not.toBe(before.tailnet.address);
      return current;
    }, 30_000);
    const exec = await cli(["exec", "one", "--", "echo", "recovered"], 60_000);
    expect(exec).toMatchObject({ code: 0, stdout: "recovered\n" });
    await eventually(async () => {
      const addresses = (await server.tailnet!.coordinator.listNodes()).flatMap((node) => node.ipAddresses);
      expect(addresses).toContain(after.tailnet.address);
      expect(addresses).not.toContain(before.tailnet.address);
    }, 15_000);
  }, 90_000);

  it("recovers when the control plane restarts: endpoints come from the database, headscale keeps its port", async () => {
    const agent = await joinedAgentOf("one");
    await server.close();
    server = await start();
    // headscale restarted too: the workspace's tailscaled reconnects to it (with its own backoff) and then learns
    // the control plane's new node; calls fail until then and must succeed after.
    const exec = await eventually(async () => {
      const result = await api("POST", "/api/v1/workspaces/one/exec", { command: "echo after-restart" });
      expect(result.status, result.text).toBe(200);
      return result;
    }, 60_000);
    expect(exec.text).toContain(Buffer.from("after-restart\n").toString("base64"));
    expect((await agentOf("one")).tailnet.address).toBe(agent.tailnet.address);
  }, 120_000);

  it("deleting a workspace removes its node; its agent token can no longer get a key", async () => {
    const created = await cli(["create", "two", "--template", "local"], 120_000);
    expect(created.code, created.stderr).toBe(0);
    const agent = await eventually(async () => {
      const current = await agentOf("two");
      expect(current.tailnet).not.toBeNull();
      return current;
    }, 20_000);
    const daemon = daemonEnvironment(url, agent.directory);
    expect((await cli(["delete", "two"], 120_000)).code).toBe(0);
    await eventually(async () => {
      const addresses = (await server.tailnet!.coordinator.listNodes()).flatMap((node) => node.ipAddresses);
      expect(addresses).not.toContain(agent.tailnet.address);
    }, 15_000);
    const join = await fetch(`${url}/api/v1/agent/tailnet/join`, { method: "POST", headers: { authorization: `Bearer ${daemon.KILN_AGENT_TOKEN}` } });
    expect(join.status).toBe(401);
    await expect(server.tunnel.dial(agent.id, { timeoutMs: 1000 })).rejects.toThrow();
  }, 180_000);
});

describe.skipIf(!available && !strict)("kiln server --tailnet over DERP (TS_DEBUG_ALWAYS_USE_DERP), a real server process", () => {
  let database: TestDatabase;
  let server: KilnServerProcess;
  const config = temporaryDirectory("kiln-tailnet-derp-cli-");
  const cli = (args: string[], timeoutMs?: number) => kiln(args, { configDir: config.path, timeoutMs });
  const token = () => (JSON.parse(readFileSync(path.join(config.path, "session.json"), "utf8")) as { token: string }).token;

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startKilnServer({ postgresUrl: database.url, env: { KILN_TAILNET: "1", TS_DEBUG_ALWAYS_USE_DERP: "1", KILN_LOG_LEVEL: "warn" } });
    const login = await cli(["login", server.url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"]);
    expect(login.code, login.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    if (server) killDaemonsOf(server.url);
    await database?.close();
    config.remove();
  });

  it("creates a workspace reachable over the tailnet through DERP: exec, files, ping", async () => {
    const created = await cli(["create", "relayed", "--template", "local"], 120_000);
    expect(created.code, created.stderr).toBe(0);
    const ping = await eventually(async () => {
      const result = await cli(["ping", "relayed", "-c", "1", "-o", "json"], 60_000);
      expect(result.code, result.stderr).toBe(0);
      const parsed = JSON.parse(result.stdout.trim()) as { transport: string; path: string };
      expect(parsed.transport).toBe("tailnet");
      return parsed;
    }, 30_000);
    expect(ping).toMatchObject({ path: "derp", tailnet: { endpoint: "DERP(kiln)" } });
    expect(await cli(["exec", "relayed", "--", "sh", "-c", "echo through-derp > f.txt && cat f.txt"])).toMatchObject({ code: 0, stdout: "through-derp\n" });
    expect(((await (await fetch(`${server.url}/healthz`)).json()) as { tailnet: unknown }).tailnet).toEqual({ mode: "embedded", coordinator: "ok", node: "running" });
  }, 180_000);

  it("falls back to the relay (fallback is on by default) when a daemon reports it cannot join, and says why", async () => {
    const info = await fetch(`${server.url}/api/v1/workspaces/relayed/agent-info`, { headers: { authorization: `Bearer ${token()}` } });
    const agent = ((await info.json()) as { agent: { directory: string } }).agent;
    const daemon = daemonEnvironment(server.url, agent.directory);
    const reported = await fetch(`${server.url}/api/v1/agent/tailnet`, {
      method: "POST", headers: { authorization: `Bearer ${daemon.KILN_AGENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ error: "tailscaled not found on PATH" }),
    });
    expect(reported.status).toBe(204);
    const ping = await cli(["ping", "relayed", "-c", "1"], 60_000);
    expect(ping.code, ping.stderr).toBe(0);
    expect(ping.stdout).toMatch(/^pong from relayed over relay \(not on the tailnet: tailscaled not found on PATH\) in [\d.]+ ms$/m);
    expect(await cli(["exec", "relayed", "--", "cat", "f.txt"])).toMatchObject({ code: 0, stdout: "through-derp\n" });
  }, 120_000);
});

describe.skipIf(!available && !strict)("kiln server --tailnet with an external headscale (KILN_TAILNET_URL + KILN_TAILNET_API_KEY)", () => {
  let database: TestDatabase;
  let headscale: Headscale;
  let server: RunningServer;
  const dataDir = temporaryDirectory("kiln-tailnet-external-");
  const config = temporaryDirectory("kiln-tailnet-external-cli-");
  const cli = (args: string[], timeoutMs?: number) => kiln(args, { configDir: config.path, timeoutMs });

  beforeAll(async () => {
    database = await createTestDatabase();
    const binary = findBinaries(["headscale"]).found.headscale!;
    const headscaleDir = path.join(dataDir.path, "headscale");
    // Run by "someone else": its own config and policy, an API key made with its CLI.
    headscale = await Headscale.start({ binary, dataDir: headscaleDir, policy: defaultPolicy() });
    const apiKey = execFileSync(binary, ["-c", path.join(headscaleDir, "config.yaml"), "apikeys", "create", "--expiration", "1h", "--force"], { encoding: "utf8" }).trim();
    server = await startServer(
      parseServerConfig({ dataDir: path.join(dataDir.path, "kiln"), listen: "127.0.0.1:0", postgresUrl: database.url ?? undefined, logLevel: "silent", tailnet: true, tailnetUrl: headscale.url, tailnetApiKey: apiKey, tailnetRelayFallback: false }),
      createLogger({ level: process.env.KILN_TEST_LOG ?? "silent" }),
    );
    const login = await cli(["login", server.accessUrl, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"]);
    expect(login.code, login.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    if (server) killDaemonsOf(server.accessUrl);
    await headscale?.stop();
    await database?.close();
    dataDir.remove();
    config.remove();
  });

  it("joins the control plane and a workspace to it and runs commands over it", async () => {
    expect(server.tailnet!.mode).toBe("external");
    const created = await cli(["create", "ext", "--template", "local"], 120_000);
    expect(created.code, created.stderr).toBe(0);
    expect(await cli(["exec", "ext", "--", "echo", "via-external-headscale"], 60_000)).toMatchObject({ code: 0, stdout: "via-external-headscale\n" });
    const ping = await cli(["ping", "ext", "-c", "1", "-o", "json"], 60_000);
    expect(JSON.parse(ping.stdout.trim())).toMatchObject({ transport: "tailnet", path: "direct" });
    const nodes = await headscale.listNodes();
    expect(nodes.map((node) => node.tags[0]).sort()).toEqual(["tag:kiln-control-plane", "tag:kiln-workspace"]);
    expect(((await (await fetch(`${server.accessUrl}/healthz`)).json()) as { tailnet: unknown }).tailnet).toEqual({ mode: "external", coordinator: "ok", node: "running" });
  }, 180_000);

  it("refuses to start with an API key but no URL, or with a wrong key", async () => {
    const log = createLogger({ level: "silent" });
    await expect(startServer(parseServerConfig({ dataDir: path.join(dataDir.path, "bad1"), listen: "127.0.0.1:0", postgresUrl: database.url ?? undefined, tailnet: true, tailnetApiKey: "key" }), log))
      .rejects.toThrow(/KILN_TAILNET_API_KEY is set but KILN_TAILNET_URL is not/);
    await expect(startServer(parseServerConfig({ dataDir: path.join(dataDir.path, "bad2"), listen: "127.0.0.1:0", postgresUrl: database.url ?? undefined, tailnet: true, tailnetUrl: headscale.url, tailnetApiKey: "wrong-key" }), log))
      .rejects.toThrow(/refused KILN_TAILNET_API_KEY \(HTTP 401\)/);
  }, 60_000);
});
