import "@xterm/xterm/css/xterm.css";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { useWorkspace } from "./workspace-api.ts";

type TerminalState = "connecting" | "open" | "closed" | "unavailable";

/**
 * The web terminal: xterm.js over the workspace PTY WebSocket (`/api/v1/workspaces/{ws}/pty`):
 * binary frames carry bytes both ways, a JSON text frame `{"type":"resize",cols,rows}` resizes.
 * The session cookie authenticates the upgrade (same origin; SameSite keeps other sites out).
 */
export default function TerminalPage() {
  const { workspace: reference = "" } = useParams();
  const workspace = useWorkspace(reference);
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<TerminalState>("connecting");
  const [attempt, setAttempt] = useState(0);
  const workspaceId = workspace.data?.id;

  useEffect(() => {
    if (!workspaceId || !host.current) return;
    const terminal = new Terminal({ cursorBlink: true, fontSize: 14, fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", scrollback: 5000 });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(host.current);
    fit.fit();
    setState("connecting");
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${window.location.host}/api/v1/workspaces/${encodeURIComponent(workspaceId)}/pty?cols=${terminal.cols}&rows=${terminal.rows}`;
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    let opened = false;
    const encoder = new TextEncoder();
    const sendResize = () => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ type: "resize", cols: terminal.cols, rows: terminal.rows }));
    socket.onopen = () => {
      opened = true;
      setState("open");
      sendResize();
      terminal.focus();
    };
    socket.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) terminal.write(new Uint8Array(event.data));
      else if (typeof event.data === "string") {
        // Text frames are control messages; an error message is shown in the terminal.
        try {
          const message = JSON.parse(event.data) as { type?: string; message?: string };
          if (message.type === "error" && message.message) terminal.write(`\r\n\x1b[31m${message.message}\x1b[0m\r\n`);
        } catch {
          terminal.write(event.data);
        }
      }
    };
    socket.onclose = () => setState(opened ? "closed" : "unavailable");
    const input = terminal.onData((data) => socket.readyState === WebSocket.OPEN && socket.send(encoder.encode(data)));
    const binary = terminal.onBinary((data) => socket.readyState === WebSocket.OPEN && socket.send(Uint8Array.from(data, (character) => character.charCodeAt(0))));
    const resize = terminal.onResize(sendResize);
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(host.current);
    return () => {
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resize.dispose();
      socket.onclose = null;
      socket.close();
      terminal.dispose();
    };
  }, [workspaceId, attempt]);

  return (
    <main className="page terminal-page" id="main">
      <header className="page-header">
        <h1>Terminal <span className="muted">{workspace.data?.name ?? reference}</span></h1>
        <div className="page-actions">
          <span className={`badge ${state === "open" ? "badge-ok" : state === "connecting" ? "badge-busy" : "badge-bad"}`} role="status">{state}</span>
          {(state === "closed" || state === "unavailable") && <button type="button" onClick={() => setAttempt((value) => value + 1)}>Reconnect</button>}
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
