import "@xterm/xterm/css/xterm.css";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { useWorkspace } from "./workspace-api.ts";

type TerminalState = "connecting" | "open" | "exited" | "closed" | "unavailable";

/** Text frames from the server (control-plane/src/interactive/protocol.ts, PtyServerMessage). */
type ServerMessage = { type: "session"; id: string; created: boolean } | { type: "exit"; exit_code: number | null; signal: string | null } | { type: "error"; message?: string };

/** Close code for "the tunnel to the workspace agent dropped" (CloseCode.agentLost). */
const AGENT_LOST = 4001;

const sessionKey = (workspaceId: string) => `kiln.terminal.${workspaceId}`;

/**
 * The web terminal: xterm.js over the workspace PTY WebSocket (`/api/v1/workspaces/{ws}/pty`).
 * Binary frames carry bytes both ways; JSON text frames: `{"type":"resize",cols,rows}` from here,
 * `session` (the id to reattach to, scrollback replayed) and `exit` from the server. The session id
 * is kept per tab, so a reload or reconnect attaches to the same shell. The session cookie
 * authenticates the upgrade (the server checks that it comes from its own pages).
 */
export default function TerminalPage() {
  const { workspace: reference = "" } = useParams();
  const workspace = useWorkspace(reference);
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<TerminalState>("connecting");
  const [detail, setDetail] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const workspaceId = workspace.data?.id;

  useEffect(() => {
    if (!workspaceId || !host.current) return;
    const terminal = new Terminal({ cursorBlink: true, fontSize: 14, lineHeight: 1.2, fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", scrollback: 5000 });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(host.current);
    fit.fit();
    setState("connecting");
    setDetail(null);
    const encoder = new TextEncoder();
    let socket: WebSocket | null = null;
    let disposed = false;

    const connect = (session: string | null) => {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const query = new URLSearchParams({ cols: String(terminal.cols), rows: String(terminal.rows) });
      if (session) query.set("session", session);
      const current = new WebSocket(`${scheme}://${window.location.host}/api/v1/workspaces/${encodeURIComponent(workspaceId)}/pty?${query}`);
      socket = current;
      current.binaryType = "arraybuffer";
      let opened = false;
      current.onopen = () => {
        opened = true;
        setState("open");
        terminal.focus();
      };
      current.onmessage = (event) => {
        if (event.data instanceof ArrayBuffer) {
          terminal.write(new Uint8Array(event.data));
          return;
        }
        let message: ServerMessage;
        try {
          message = JSON.parse(String(event.data)) as ServerMessage;
        } catch {
          return;
        }
        if (message.type === "session") {
          sessionStorage.setItem(sessionKey(workspaceId), message.id);
        } else if (message.type === "exit") {
          sessionStorage.removeItem(sessionKey(workspaceId));
          setState("exited");
          setDetail(message.signal ? `ended by ${message.signal}` : `exit code ${message.exit_code ?? "unknown"}`);
        } else if (message.type === "error" && message.message) {
          terminal.write(`\r\n\x1b[31m${message.message}\x1b[0m\r\n`);
        }
      };
      current.onclose = (event) => {
        if (disposed || socket !== current) return;
        // A kept session that has ended cannot be attached to: start a new one, once.
        if (!opened && session) {
          sessionStorage.removeItem(sessionKey(workspaceId));
          connect(null);
          return;
        }
        setState((previous) => (previous === "exited" ? previous : opened ? "closed" : "unavailable"));
        if (event.code === AGENT_LOST) setDetail("the workspace agent disconnected");
        else if (event.reason) setDetail(event.reason);
      };
    };
    connect(sessionStorage.getItem(sessionKey(workspaceId)));

    const send = (data: Uint8Array | string) => socket?.readyState === WebSocket.OPEN && socket.send(data);
    const input = terminal.onData((data) => send(encoder.encode(data)));
    const binary = terminal.onBinary((data) => send(Uint8Array.from(data, (character) => character.charCodeAt(0))));
    const resize = terminal.onResize(({ cols, rows }) => send(JSON.stringify({ type: "resize", cols, rows })));
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(host.current);
    return () => {
      disposed = true;
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resize.dispose();
      socket?.close();
      terminal.dispose();
    };
  }, [workspaceId, attempt]);

  return (
    <main className="page terminal-page" id="main">
      <header className="page-header">
        <h1>Terminal <span className="muted">{workspace.data?.name ?? reference}</span></h1>
        <div className="page-actions">
          <span className={`badge ${state === "open" ? "badge-ok" : state === "connecting" ? "badge-busy" : "badge-bad"}`} role="status" data-state={state}>{state}{detail ? `: ${detail}` : ""}</span>
          {state !== "open" && state !== "connecting" && <button type="button" onClick={() => setAttempt((value) => value + 1)}>{state === "exited" ? "New session" : "Reconnect"}</button>}
          <Link className="button" to={`/workspaces/${workspaceId ?? reference}`}>Back</Link>
        </div>
      </header>
      {state === "unavailable" && (
        <p className="error-box" role="alert">The terminal could not connect. The workspace agent may be offline, or this server does not offer the terminal endpoint yet.</p>
      )}
      <div ref={host} className="terminal-host" aria-label="Terminal" />
    </main>
  );
}
