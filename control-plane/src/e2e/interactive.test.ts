import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpgradeProxy } from "@kiln/tailnet/testing";
import { WebSocket } from "ws";
import { parseServerConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import { startServer, type RunningServer } from "../server/server.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { kiln, killDaemonsOf, temporaryDirectory } from "../testing/kiln-process.ts";
import { freePort } from "../testing/postgres-cluster.ts";
import { background, eventually, run, type Background } from "../testing/processes.ts";

/**
 * Interactive access end to end: an in-process kiln server (so the test can cut the tunnel),
 * a real kiln-daemon in a local workspace, the real kiln CLI, and the real OpenSSH client
 * (ssh, scp, sftp) through the config `kiln config-ssh` writes.
 */
describe("interactive access: web terminal, kiln ssh, OpenSSH, port forwarding", () => {
  let database: TestDatabase;
  let server: RunningServer;
  let url: string;
  let token: string;
  let workspaceDirectory: string;
  const dataDir = temporaryDirectory("kiln-interactive-");
  const config = temporaryDirectory("kiln-interactive-cli-");
  const otherConfig = temporaryDirectory("kiln-interactive-eve-");
  const sshDir = temporaryDirectory("kiln-interactive-ssh-");
  const sshConfig = path.join(sshDir.path, "config");
  const tmuxSocket = `kiln-test-${process.pid}`;
  const running: Background[] = [];
  const env = () => ({ ...process.env, KILN_CONFIG_DIR: config.path });
  const cli = (args: string[], timeoutMs?: number) => kiln(args, { configDir: config.path, timeoutMs });
  const ssh = (args: string[], options: { input?: string; timeoutMs?: number } = {}) => run("ssh", ["-F", sshConfig, ...args], { env: env(), ...options });
  const keep = (process: Background) => {
    running.push(process);
    return process;
  };
  const api = async (method: string, route: string, body?: unknown, as = token) => {
    const response = await fetch(`${url}${route}`, { method, headers: { authorization: `Bearer ${as}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return { status: response.status, body: (await response.json().catch(() => null)) as any };
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startServer(parseServerConfig({ dataDir: dataDir.path, listen: "127.0.0.1:0", postgresUrl: database.url ?? undefined, logLevel: "silent" }), createLogger({ level: process.env.KILN_TEST_LOG ?? "silent" }));
    url = server.accessUrl;
    const login = await cli(["login", url, "--first-user-email", "me@example.com", "--first-user-username", "me", "--first-user-password", "password-123"]);
    expect(login.code, login.stderr).toBe(0);
    token = JSON.parse(await readFile(path.join(config.path, "session.json"), "utf8")).token;
    const create = await cli(["create", "dev", "--template", "local"], 120_000);
    expect(create.code, create.stderr).toBe(0);
    workspaceDirectory = (await api("GET", "/api/v1/workspaces/dev")).body.agent.directory;
    const configured = await cli(["config-ssh", "--ssh-config-file", sshConfig, "--yes"]);
    expect(configured.code, configured.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    for (const process of running) await process.stop();
    await run("tmux", ["-L", tmuxSocket, "kill-server"]).catch(() => undefined);
    await server?.close();
    if (url) killDaemonsOf(url);
    await database?.close();
    for (const directory of [dataDir, config, otherConfig, sshDir]) directory.remove();
  });

  it("config-ssh writes an idempotent managed block, keeps the rest of the file and drops stale hosts", async () => {
    const written = await readFile(sshConfig, "utf8");
    expect(written).toContain("Host kiln.dev\n");
    expect(written).toContain("ssh --stdio dev");
    expect(written).toContain(`KILN_CONFIG_DIR=${config.path}`);
    await writeFile(sshConfig, `Host example\n  HostName example.com\n\n${written}`);
    const again = await cli(["config-ssh", "--ssh-config-file", sshConfig, "--yes"]);
    expect(again.stderr).toContain("up to date");

    expect((await cli(["create", "scratch", "--template", "local"], 120_000)).code).toBe(0);
    await cli(["config-ssh", "--ssh-config-file", sshConfig, "--yes"]);
    expect(await readFile(sshConfig, "utf8")).toContain("Host kiln.scratch\n");
    expect((await cli(["delete", "scratch"], 120_000)).code).toBe(0);
    const pruned = await cli(["config-ssh", "--ssh-config-file", sshConfig, "--yes"]);
    expect(pruned.stderr).toContain("- kiln.scratch");
    const final = await readFile(sshConfig, "utf8");
    expect(final).not.toContain("kiln.scratch");
    expect(final.startsWith("Host example\n  HostName example.com\n\n# ------------START-KILN")).toBe(true);
    expect(final.match(/START-KILN/g)).toHaveLength(1);
  }, 240_000);

  it("runs commands with OpenSSH: `ssh kiln.dev echo ok`, exit codes, stdin", async () => {
    expect(await ssh(["kiln.dev", "echo", "ok"])).toMatchObject({ code: 0, stdout: "ok\n" });
    expect((await ssh(["kiln.dev", "echo oops >&2; exit 42"])).code).toBe(42);
    expect((await ssh(["kiln.dev", "echo oops >&2; exit 42"])).stderr).toContain("oops");
    expect(await ssh(["kiln.dev", "wc -c"], { input: "twelve bytes" })).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\s*12\n$/) });
    expect((await ssh(["kiln.dev", "pwd"])).stdout.trim()).toBe(workspaceDirectory);
  });

  it("`kiln ssh --stdio` gets the raw bytes on the upgraded connection, and falls back to a WebSocket behind a proxy that passes nothing else", async () => {
    // The upgrade itself: 101 with the token, then the workspace's SSH banner, unframed.
    const banner = await new Promise<{ status: number; upgrade: string | undefined; first: string }>((resolve, reject) => {
      const request = http.request(`${url}/api/v1/workspaces/dev/ssh`, { headers: { connection: "Upgrade", upgrade: "kiln-bytes", authorization: `Bearer ${token}` } });
      request.on("upgrade", (response, socket, head) => {
        const collect = (chunk: Buffer) => {
          socket.destroy();
          resolve({ status: response.statusCode!, upgrade: response.headers.upgrade, first: chunk.toString("latin1") });
        };
        if (head.length > 0) collect(head);
        else socket.once("data", collect);
      });
      request.on("response", (response) => reject(new Error(`expected 101, got ${response.statusCode}`)));
      request.on("error", reject);
      request.end();
    });
    expect(banner).toMatchObject({ status: 101, upgrade: "kiln-bytes", first: expect.stringMatching(/^SSH-2\.0-/) });
    // Refusals are still Kiln's JSON, before any upgrade.
    const refusal = (route: string, upgrade: string) => new Promise<{ status: number; body: any }>((resolve, reject) => {
      const request = http.request(`${url}${route}`, { headers: { connection: "Upgrade", upgrade, authorization: `Bearer ${token}` } });
      request.on("response", (response) => {
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode!, body: JSON.parse(body) }));
      });
      request.on("upgrade", (_response, socket) => {
        socket.destroy();
        reject(new Error(`${route} was upgraded to ${upgrade}`));
      });
      request.on("error", reject);
      request.end();
    });
    expect(await refusal("/api/v1/workspaces/nope/ssh", "kiln-bytes")).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    // A terminal needs the WebSocket's control messages; the refusal comes before a session is started.
    const sessionsBefore = (await api("GET", "/api/v1/workspaces/dev/agent/v1/pty")).body;
    for (const [route, upgrade] of [["/api/v1/workspaces/dev/pty?cols=80&rows=24", "kiln-bytes"], ["/api/v1/workspaces/dev/ssh", "h2c"]] as const) {
      expect(await refusal(route, upgrade)).toMatchObject({ status: 400, body: { error: { code: "invalid_request", details: { issues: [{ field: "upgrade" }] } } } });
    }
    expect((await api("GET", "/api/v1/workspaces/dev/agent/v1/pty")).body).toEqual(sessionsBefore);

    // A proxy that forwards WebSocket upgrades and answers anything else with a plain 400.
    const proxy = await startUpgradeProxy(url, (request) => (request.headers.upgrade?.toLowerCase() === "websocket" ? "forward" : 400));
    try {
      const proxied = { ...env(), KILN_URL: `http://127.0.0.1:${proxy.port}`, KILN_TOKEN: token };
      expect(await run("ssh", ["-F", sshConfig, "kiln.dev", "echo", "via-proxy"], { env: proxied })).toMatchObject({ code: 0, stdout: "via-proxy\n" });
      expect(proxy.upgrades).toEqual(["kiln-bytes", "websocket"]);
    } finally {
      proxy.close();
    }
  });

  it("runs commands with `kiln ssh`, keeping the exit code", async () => {
    // Repeated: a quick command's output, exit status and close can all arrive in one read.
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await cli(["ssh", "dev", "--", "sh", "-c", "echo from-kiln-ssh; exit 7"])).toMatchObject({ code: 7, stdout: "from-kiln-ssh\n" });
    }
    expect(await cli(["ssh", "dev", "echo", "plain"])).toMatchObject({ code: 0, stdout: "plain\n" });
  });

  it("drives interactive shells (OpenSSH and kiln ssh) through tmux: typing, screen, resize", async () => {
    const tmux = (...args: string[]) => run("tmux", ["-L", tmuxSocket, ...args], { env: env() });
    const screen = async (pane: string) => (await tmux("capture-pane", "-p", "-t", pane)).stdout;
    const waitForScreen = (pane: string, pattern: RegExp) => eventually(async () => {
      const text = await screen(pane);
      if (!pattern.test(text)) throw new Error(`screen of ${pane} does not match ${pattern}:\n${text}`);
      return text;
    });

    expect((await tmux("new-session", "-d", "-s", "openssh", "-x", "120", "-y", "40", `ssh -F ${sshConfig} kiln.dev`)).code).toBe(0);
    await tmux("send-keys", "-t", "openssh", "echo typed-$((6*7))", "Enter");
    await waitForScreen("openssh", /^typed-42$/m);
    await tmux("send-keys", "-t", "openssh", "stty size", "Enter");
    await waitForScreen("openssh", /^40 120$/m);

    const kilnCommand = `${process.execPath} ${path.resolve("control-plane/bin/kiln.mjs")} ssh dev; echo "kiln-ssh-exit=$?"; sleep 60`;
    expect((await tmux("new-session", "-d", "-s", "kiln", "-x", "100", "-y", "30", kilnCommand)).code).toBe(0);
    await tmux("send-keys", "-t", "kiln", "tty", "Enter");
    await waitForScreen("kiln", /^\/dev\/pts\/\d+$/m);
    await tmux("resize-window", "-t", "kiln", "-x", "90", "-y", "25");
    await eventually(async () => {
      await tmux("send-keys", "-t", "kiln", "stty size", "Enter");
      await waitForScreen("kiln", /^25 90$/m);
    }, 15_000);
    await tmux("send-keys", "-t", "kiln", "exit 5", "Enter");
    await waitForScreen("kiln", /kiln-ssh-exit=5/);
  }, 60_000);

  it("copies 50 MiB with scp both ways and an sftp batch", async () => {
    const payload = randomBytes(50 * 1024 * 1024);
    const digest = createHash("sha256").update(payload).digest("hex");
    const local = path.join(sshDir.path, "up.bin");
    await writeFile(local, payload);
    const up = await run("scp", ["-F", sshConfig, "-q", local, "kiln.dev:uploaded.bin"], { env: env(), timeoutMs: 120_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(createHash("sha256").update(await readFile(path.join(workspaceDirectory, "uploaded.bin"))).digest("hex")).toBe(digest);
    const back = path.join(sshDir.path, "down.bin");
    const down = await run("scp", ["-F", sshConfig, "-q", "kiln.dev:uploaded.bin", back], { env: env(), timeoutMs: 120_000 });
    expect(down.code, down.stderr).toBe(0);
    expect(createHash("sha256").update(await readFile(back)).digest("hex")).toBe(digest);

    await writeFile(path.join(sshDir.path, "note.txt"), "sftp batch\n");
    const batch = path.join(sshDir.path, "batch");
    await writeFile(batch, [
      "mkdir batchdir",
      "cd batchdir",
      `put ${path.join(sshDir.path, "note.txt")} note.txt`,
      "rename note.txt renamed.txt",
      "ls -l",
      `get renamed.txt ${path.join(sshDir.path, "fetched.txt")}`,
      "chmod 600 renamed.txt",
      "rm renamed.txt",
      "cd ..",
      "rmdir batchdir",
      "pwd",
    ].join("\n"));
    const sftp = await run("sftp", ["-F", sshConfig, "-vvv", "-b", batch, "kiln.dev"], { env: env() });
    expect(sftp.code, sftp.stderr + sftp.stdout).toBe(0);
    // The server's limits@openssh.com answer: OpenSSH moves file data in ~255 KiB pieces, not 32 KiB.
    expect(sftp.stderr).toMatch(/server upload\/download buffer sizes 261120 \/ 261120/);
    // config-ssh put AES-GCM first (Node's OpenSSL does it faster than ssh2's ChaCha20-Poly1305).
    expect(sftp.stderr).toContain("kex: server->client cipher: aes128-gcm@openssh.com");
    expect(sftp.stdout).toMatch(/-rw.+renamed\.txt/);
    expect(sftp.stdout).toContain(`Remote working directory: ${workspaceDirectory}`);
    expect(await readFile(path.join(sshDir.path, "fetched.txt"), "utf8")).toBe("sftp batch\n");
    expect((await ssh(["kiln.dev", "test -e batchdir || echo gone"])).stdout).toBe("gone\n");
  }, 180_000);

  it("forwards ports: ssh -L, ssh -D (SOCKS), ssh -R and kiln port-forward", async () => {
    // A server started inside the workspace, over SSH.
    const workspacePort = await freePort();
    const serverScript = `require("http").createServer((q, s) => s.end("from-workspace " + q.url)).listen(${workspacePort}, "127.0.0.1", () => console.log("listening"))`;
    const workspaceServer = keep(background("ssh", ["-F", sshConfig, "kiln.dev", `exec node -e '${serverScript}'`], { env: env() }));
    await workspaceServer.waitFor("listening");

    const localPort = await freePort();
    keep(background("ssh", ["-F", sshConfig, "-N", "-L", `${localPort}:127.0.0.1:${workspacePort}`, "kiln.dev"], { env: env() }));
    expect(await eventually(async () => (await fetch(`http://127.0.0.1:${localPort}/via-L`)).text())).toBe("from-workspace /via-L");

    const socksPort = await freePort();
    keep(background("ssh", ["-F", sshConfig, "-N", "-D", `127.0.0.1:${socksPort}`, "kiln.dev"], { env: env() }));
    const socks = await eventually(async () => {
      const result = await run("curl", ["-sS", "--max-time", "5", "--socks5-hostname", `127.0.0.1:${socksPort}`, `http://localhost:${workspacePort}/via-D`]);
      if (result.code !== 0) throw new Error(result.stderr);
      return result.stdout;
    });
    expect(socks).toBe("from-workspace /via-D");

    // Remote forward: a port inside the workspace reaching a server on this side.
    const here = http.createServer((_request, response) => response.end("from-client-side"));
    await new Promise<void>((resolve) => here.listen(0, "127.0.0.1", resolve));
    const remotePort = await freePort();
    keep(background("ssh", ["-F", sshConfig, "-N", "-R", `${remotePort}:127.0.0.1:${(here.address() as AddressInfo).port}`, "kiln.dev"], { env: env() }));
    const reverse = await eventually(async () => {
      const result = await ssh(["kiln.dev", `curl -sS --max-time 5 http://127.0.0.1:${remotePort}/`]);
      if (result.code !== 0) throw new Error(result.stderr);
      return result.stdout;
    });
    expect(reverse).toBe("from-client-side");
    here.close();

    const [first, second] = [await freePort(), await freePort()];
    const forward = keep(background(process.execPath, [path.resolve("control-plane/bin/kiln.mjs"), "port-forward", "dev", "--tcp", `${first}:${workspacePort}`, "--tcp", `${second}:${workspacePort}`], { env: env() }));
    await forward.waitFor(`Forwarding 127.0.0.1:${second}`);
    expect(await (await fetch(`http://127.0.0.1:${first}/pf-1`)).text()).toBe("from-workspace /pf-1");
    expect(await (await fetch(`http://127.0.0.1:${second}/pf-2`)).text()).toBe("from-workspace /pf-2");
    await workspaceServer.stop();
  }, 120_000);

  it("web terminal WebSocket: echoes typed input, resizes, and replays scrollback on reattach", async () => {
    const wsUrl = `${url.replace("http", "ws")}/api/v1/workspaces/dev/pty`;
    const open = (query: string) => new Promise<{ ws: WebSocket; text(): string; messages: any[]; waitFor(pattern: RegExp): Promise<void>; closed: Promise<{ code: number; reason: string }> }>((resolve, reject) => {
      const ws = new WebSocket(`${wsUrl}?${query}`, { headers: { authorization: `Bearer ${token}` } });
      let output = "";
      const messages: any[] = [];
      const listeners = new Set<() => void>();
      ws.on("message", (data: Buffer, isBinary) => {
        if (isBinary) output += data.toString("utf8");
        else messages.push(JSON.parse(data.toString("utf8")));
        for (const listener of listeners) listener();
      });
      const closed = new Promise<{ code: number; reason: string }>((done) => ws.once("close", (code, reason) => done({ code, reason: reason.toString() })));
      ws.once("open", () => resolve({
        ws, messages, closed,
        text: () => output,
        waitFor: (pattern) => new Promise<void>((done, fail) => {
          const check = () => {
            if (!pattern.test(output)) return;
            listeners.delete(check);
            clearTimeout(timer);
            done();
          };
          const timer = setTimeout(() => fail(new Error(`no ${pattern} in terminal output:\n${output}`)), 10_000);
          listeners.add(check);
          check();
        }),
      }));
      ws.once("unexpected-response", (_request, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
      ws.once("error", reject);
    });

    const first = await open("cols=80&rows=24");
    await first.waitFor(/./);
    expect(first.messages[0]).toMatchObject({ type: "session", created: true });
    const sessionId = first.messages[0].id as string;
    first.ws.send(Buffer.from("echo web-$((40+2))\r"));
    await first.waitFor(/web-42/);
    first.ws.send(JSON.stringify({ type: "resize", cols: 132, rows: 43 }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    first.ws.send(Buffer.from("stty size\r"));
    await first.waitFor(/43 132/);
    first.ws.close();
    await first.closed;

    const again = await open(`session=${sessionId}`);
    await again.waitFor(/web-42[\s\S]*43 132/);
    expect(again.messages[0]).toEqual({ type: "session", id: sessionId, created: false });
    again.ws.send(JSON.stringify({ type: "input", data: "exit 3\r" }));
    expect(await again.closed).toEqual({ code: 1000, reason: "terminal session ended" });
    expect(again.messages.at(-1)).toEqual({ type: "exit", exit_code: 3, signal: null });

    const gone = await open(`session=${sessionId}`).then(() => "opened", (error: Error) => error.message);
    expect(gone).toBe("opened"); // an exited session still replays its scrollback for a while
  }, 60_000);

  it("keeps other users out: no terminal, SSH or TCP into someone else's workspace", async () => {
    const created = await api("POST", "/api/v1/users", { email: "eve@example.com", username: "eve", password: "password-123" });
    expect(created.status).toBe(201);
    expect((await kiln(["login", url, "--login", "eve", "--password", "password-123"], { configDir: otherConfig.path })).code).toBe(0);
    const eveToken = JSON.parse(await readFile(path.join(otherConfig.path, "session.json"), "utf8")).token;
    const status = (route: string, headers: Record<string, string>) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace("http", "ws")}${route}`, { headers });
      ws.once("open", () => {
        ws.close();
        reject(new Error(`${route} opened`));
      });
      ws.once("unexpected-response", (_request, response) => {
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      });
      ws.once("error", () => {});
    });
    const asEve = { authorization: `Bearer ${eveToken}` };
    for (const kind of ["pty", "ssh", "tcp?port=22"]) {
      const refused = await status(`/api/v1/workspaces/me%2Fdev/${kind}`, asEve);
      expect(refused.status).toBe(404);
      expect(JSON.parse(refused.body)).toMatchObject({ error: { code: "not_found" } });
    }
    expect((await status("/api/v1/workspaces/dev/ssh", {})).status).toBe(401);
    // The dashboard's cookie counts only from the server's own origin.
    expect((await status("/api/v1/workspaces/dev/pty", { cookie: `kiln_session=${token}`, origin: "https://evil.example" })).status).toBe(403);
    const eveSsh = await kiln(["ssh", "me/dev", "--", "echo", "in"], { configDir: otherConfig.path });
    expect(eveSsh.code).toBe(1);
    expect(eveSsh.stderr).toContain("workspace not found");
    expect(eveSsh.stdout).toBe("");
    const nothing = await status(`/api/v1/workspaces/dev/tcp?port=${await freePort()}`, { authorization: `Bearer ${token}` });
    expect(nothing.status).toBe(502);
    expect(nothing.body).toContain("nothing is listening");
  });

  it("a dropped tunnel ends SSH sessions with a clear message; a new session works once the daemon is back", async () => {
    const workspace = (await api("GET", "/api/v1/workspaces/dev")).body;
    const kilnSession = keep(background(process.execPath, [path.resolve("control-plane/bin/kiln.mjs"), "ssh", "dev", "--", "echo started; sleep 60"], { env: env() }));
    const openSsh = keep(background("ssh", ["-F", sshConfig, "kiln.dev", "echo started; sleep 60"], { env: env() }));
    await kilnSession.waitFor("started");
    await openSsh.waitFor("started");

    server.relay.disconnect(workspace.agent.id);

    expect(await kilnSession.exited).toEqual({ code: 255, signal: null });
    expect(kilnSession.output()).toContain("connection to workspace 'dev' lost: connection to the workspace agent was lost");
    expect((await openSsh.exited).code).toBe(255);
    expect(openSsh.output()).toContain("connection to workspace 'dev' lost");

    const after = await eventually(async () => {
      const result = await cli(["ssh", "dev", "--", "echo", "back"]);
      if (result.code !== 0) throw new Error(result.stderr);
      return result.stdout;
    }, 30_000);
    expect(after).toBe("back\n");
    expect(await ssh(["kiln.dev", "echo", "ok"])).toMatchObject({ code: 0, stdout: "ok\n" });
  }, 60_000);
});
