import { Link } from "react-router";
import type { ToolActivity } from "./chat-state.ts";

interface ToolCall {
  toolCallId: string;
  toolName: string;
  input: unknown;
}

interface ToolResult {
  output: string;
  isError?: boolean;
  data?: unknown;
}

const OUTPUT_SHOWN = 20_000;

function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
}

/** One line naming what the call does, shown on the closed card. */
function summarize(call: ToolCall): string {
  const input = record(call.input);
  switch (call.toolName) {
    case "execute":
      return String(input.command ?? "");
    case "read_file":
    case "write_file":
      return String(input.path ?? "");
    case "edit_files":
      return Array.isArray(input.edits) ? [...new Set(input.edits.map((edit) => String(record(edit).path ?? "")))].join(", ") : "";
    case "spawn_agent":
      return String(input.title ?? input.prompt ?? "").slice(0, 120);
    case "create_workspace":
      return String(input.name ?? input.template_id ?? "");
    default:
      return "";
  }
}

function clip(text: string): string {
  return text.length > OUTPUT_SHOWN ? `${text.slice(0, OUTPUT_SHOWN)}\n… (${text.length - OUTPUT_SHOWN} more characters)` : text;
}

export function Diff({ diff }: { diff: string }) {
  const lines = diff.replace(/\n$/, "").split("\n");
  return (
    <pre className="diff" aria-label="unified diff">
      {lines.map((line, index) => {
        const kind = line.startsWith("+++") || line.startsWith("---") || line.startsWith("Index:") || line.startsWith("===")
          ? "meta" : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "ctx";
        return <span key={index} className={`diff-${kind}`}>{line}{"\n"}</span>;
      })}
    </pre>
  );
}

function ResultView({ call, result }: { call: ToolCall; result: ToolResult }) {
  const data = record(result.data);
  if (call.toolName === "edit_files" && Array.isArray(data.files) && !result.isError) {
    return (
      <div className="tool-diffs">
        {data.files.map((file, index) => {
          const entry = record(file);
          return (
            <div key={index} className="tool-file">
              <div className="tool-file-path">{String(entry.path ?? "")}</div>
              <Diff diff={String(entry.diff ?? "")} />
            </div>
          );
        })}
      </div>
    );
  }
  if (call.toolName === "execute" && typeof data.exit_code === "number") {
    const output = typeof data.output === "string" ? data.output : result.output;
    return (
      <div className="tool-exec">
        <div className={`exit-code ${data.exit_code === 0 ? "ok" : "bad"}`}>exit code {data.exit_code}{data.timed_out ? " (timed out)" : ""}{typeof data.wall_duration_ms === "number" ? ` · ${Math.round(data.wall_duration_ms)} ms` : ""}</div>
        <pre className="tool-output">{clip(output) || "(no output)"}</pre>
      </div>
    );
  }
  if (call.toolName === "spawn_agent" && typeof data.chat_id === "string") {
    return <p>Sub-agent started: <Link to={`/chats/${data.chat_id}`}>open the child chat</Link></p>;
  }
  return <pre className={`tool-output${result.isError ? " is-error" : ""}`}>{clip(result.output) || "(no output)"}</pre>;
}

function InputView({ call }: { call: ToolCall }) {
  const input = record(call.input);
  if (call.toolName === "execute" && typeof input.command === "string") {
    return <pre className="tool-command"><span aria-hidden="true">$ </span>{input.command}</pre>;
  }
  if (call.toolName === "write_file" && typeof input.content === "string") {
    return (
      <>
        <div className="tool-file-path">{String(input.path ?? "")}</div>
        <pre className="tool-output">{clip(input.content)}</pre>
      </>
    );
  }
  return <pre className="tool-input">{clip(JSON.stringify(call.input, null, 2) ?? "")}</pre>;
}

/** A tool call with its input and, once it ran, its result: edits as diffs, commands with exit code and output. */
export function ToolCard({ call, result, activity, onDecide, deciding }: {
  call: ToolCall;
  result?: ToolResult;
  activity?: ToolActivity;
  onDecide?: (approved: boolean) => void;
  deciding?: boolean;
}) {
  const awaiting = !result && activity?.state === "awaiting_approval";
  const state = result ? (result.isError ? "error" : "done") : awaiting ? "approval" : activity?.state === "running" ? "running" : activity?.state === "finished" ? (activity.isError ? "error" : "done") : "pending";
  const label = { error: "failed", done: "done", approval: "needs approval", running: "running", pending: "queued" }[state];
  const summary = summarize(call);
  const childChat = ["wait_agent", "message_agent", "close_agent"].includes(call.toolName) ? String(record(call.input).chat_id ?? "") : "";
  const open = awaiting || ["edit_files", "execute", "spawn_agent"].includes(call.toolName) || state === "error";
  return (
    <details className={`tool-card tool-${state}`} open={open} data-tool={call.toolName} data-tool-call-id={call.toolCallId}>
      <summary>
        <span className="tool-name">{call.toolName}</span>
        {summary && <span className="tool-summary">{summary}</span>}
        <span className={`tool-state tool-state-${state}`}>{label}</span>
      </summary>
      <div className="tool-body">
        {/* An edit's diff says everything its input does. */}
        {!(call.toolName === "edit_files" && result && !result.isError) && <InputView call={call} />}
        {childChat && <p><Link to={`/chats/${childChat}`}>Open the sub-agent's chat</Link></p>}
        {awaiting && onDecide && (
          <div className="approval" role="group" aria-label={`Approve ${call.toolName}?`}>
            <span>The agent wants to run <strong>{call.toolName}</strong>.</span>
            <button type="button" className="primary" onClick={() => onDecide(true)} disabled={deciding}>Approve</button>
            <button type="button" className="danger" onClick={() => onDecide(false)} disabled={deciding}>Deny</button>
          </div>
        )}
        {result ? <ResultView call={call} result={result} /> : activity?.state === "finished" && activity.output !== undefined ? (
          <pre className={`tool-output${activity.isError ? " is-error" : ""}`}>{clip(activity.output)}</pre>
        ) : null}
      </div>
    </details>
  );
}
