// @ts-check
// `kiln ssh --stdio <workspace>`: OpenSSH's ProxyCommand for `Host kiln.<workspace>` (see
// `kiln config-ssh`). OpenSSH starts it for every connection, so it is plain JavaScript that
// loads only node's http and `ws`: no TypeScript loader, no CLI framework. Keep `configDirectory` in step
// with src/cli/config-store.ts and `describeClose` with src/cli/workspace-socket.ts
// (src/cli/ssh-stdio.test.ts checks both).
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { WebSocket, createWebSocketStream } from "ws";

/** OpenSSH's exit status when the connection itself failed. */
const CONNECTION_FAILED = 255;
const AGENT_LOST = 4001;
/** The server's `Upgrade` token for raw bytes on the connection itself (src/interactive/protocol.ts). */
export const RAW_BYTES_PROTOCOL = "kiln-bytes";

/** @param {NodeJS.ProcessEnv} environment */
export function configDirectory(environment = process.env) {
  if (environment.KILN_CONFIG_DIR) return environment.KILN_CONFIG_DIR;
  if (process.platform === "darwin") return path.join(os.homedir(), "Library", "Application Support", "kiln");
  if (process.platform === "win32") return path.join(environment.APPDATA ?? path.join(os.homedir(), "AppData", "Roaming"), "kiln");
  return path.join(environment.XDG_CONFIG_HOME || path.join(os.homedir(), ".config"), "kiln");
}

/** @returns {{ url: string, token: string } | null} */
function credentials() {
  if (process.env.KILN_URL && process.env.KILN_TOKEN) return { url: process.env.KILN_URL, token: process.env.KILN_TOKEN };
  try {
    const parsed = JSON.parse(readFileSync(path.join(configDirectory(), "session.json"), "utf8"));
    return parsed.url && parsed.token ? { url: parsed.url, token: parsed.token } : null;
  } catch {
    return null;
  }
}

/**
 * What to tell a person when the socket closed, or null when it closed normally.
 * @param {string} workspace @param {number} code @param {string} reason
 */
export function describeClose(workspace, code, reason) {
  if (code === 1000 || code === 1005) return null;
  if (code === AGENT_LOST) return `connection to workspace '${workspace}' lost: ${reason || "the workspace agent disconnected"}; run the command again once the workspace is back`;
  if (code === 1006) return `connection to the Kiln server lost while connected to workspace '${workspace}'`;
  return `connection to workspace '${workspace}' closed: ${reason || `code ${code}`}`;
}

/** @param {string} message */
function fail(message) {
  process.stderr.write(`kiln: ${message}\n`);
  return CONNECTION_FAILED;
}

/**
 * Relays raw SSH bytes between stdin/stdout and the workspace's SSH server; resolves to the exit status.
 * @param {string[]} args the arguments after `ssh`
 * @returns {Promise<number>}
 */
export async function runSshStdio(args) {
  const workspace = args.find((argument) => !argument.startsWith("-"));
  if (!workspace) return fail("usage: kiln ssh --stdio <workspace>");
  const session = credentials();
  if (!session) return fail("you are not logged in; run 'kiln login <url>'");
  const url = new URL(`${session.url.replace(/\/$/, "")}/api/v1/workspaces/${encodeURIComponent(workspace)}/ssh`);
  if (!process.env.KILN_SSH_WEBSOCKET) {
    const raw = await relayRawBytes(url, session, workspace);
    if (raw !== "websocket") return raw;
  }
  return relayWebSocket(url, session, workspace);
}

/**
 * Asks for the bytes on the upgraded connection itself (no WebSocket framing on either end).
 * Resolves to the exit status, or to "websocket" when something on the way does not know this
 * upgrade (an older server, or a proxy that passes only WebSockets): its answer is not Kiln's JSON.
 * @param {URL} url @param {{ url: string, token: string }} session @param {string} workspace
 * @returns {Promise<number | "websocket">}
 */
function relayRawBytes(url, session, workspace) {
  return new Promise((resolve) => {
    const request = (url.protocol === "https:" ? https : http).request(url, {
      agent: false,
      headers: { connection: "Upgrade", upgrade: RAW_BYTES_PROTOCOL, authorization: `Bearer ${session.token}` },
    });
    request.once("response", (response) => {
      let text = "";
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => {
        let message;
        try {
          message = JSON.parse(text).error.message;
        } catch {
          // not Kiln's answer
        }
        resolve(typeof message === "string" ? fail(message) : "websocket");
      });
    });
    request.once("upgrade", (response, socket, head) => {
      if (response.headers.upgrade?.trim().toLowerCase() !== RAW_BYTES_PROTOCOL) {
        socket.destroy();
        resolve("websocket");
        return;
      }
      socket.setNoDelay(true);
      if (head.length > 0) process.stdout.write(head);
      let failure = null;
      socket.on("error", (error) => {
        failure ??= error;
      });
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
      socket.once("close", () => {
        // A reset is how the server says the workspace side failed; a FIN is a normal end.
        if (failure) resolve(fail(`connection to workspace '${workspace}' lost (${failure.code ?? failure.message}); run the command again once the workspace is back`));
        else resolve(0);
      });
    });
    request.once("error", (error) => resolve(fail(`cannot reach ${session.url}: ${error.message}`)));
    request.end();
  });
}

/**
 * The same over a WebSocket, whose close codes carry why a session ended.
 * @param {URL} webUrl @param {{ url: string, token: string }} session @param {string} workspace
 * @returns {Promise<number>}
 */
function relayWebSocket(webUrl, session, workspace) {
  const url = new URL(webUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  // An all-zero mask: masking protects proxies from content a browser script chose; this is not
  // a browser, and XOR-ing every byte is work on both ends (`ws` offers the option for such clients).
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${session.token}` }, perMessageDeflate: false, generateMask: (mask) => mask.fill(0) });

  return new Promise((resolve) => {
    let refused = false;
    ws.once("unexpected-response", (request, response) => {
      refused = true;
      let text = "";
      response.on("data", (chunk) => (text += chunk));
      response.on("end", () => {
        let message = `HTTP ${response.statusCode}`;
        try {
          message = JSON.parse(text).error.message ?? message;
        } catch {
          // not JSON: the status says enough
        }
        request.destroy();
        resolve(fail(message));
      });
    });
    ws.on("error", (error) => {
      if (!refused && ws.readyState !== WebSocket.OPEN) resolve(fail(`cannot reach ${session.url}: ${error.message}`));
    });
    ws.once("open", () => {
      // Wrapped in the open handler's tick: the server speaks first (the SSH banner), and `ws`
      // drops messages nobody listens to.
      const socket = createWebSocketStream(ws);
      // Writes queued while the socket is busy leave as one message.
      socket._writev = (chunks, callback) => {
        ws.send(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((entry) => entry.chunk)), callback);
      };
      socket.on("error", () => {});
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
      ws.once("close", (code, reason) => {
        const finish = () => {
          const problem = describeClose(workspace, code, reason.toString());
          resolve(problem ? fail(problem) : 0);
        };
        if (socket.readableEnded) finish();
        else socket.once("end", finish);
      });
    });
  });
}
