import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Fragment, memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import { Link } from "react-router";
import { api, errorMessage, unwrap, type Chat } from "../api/client.ts";
import { ErrorNote, formatTokens, Loading, StatusBadge } from "../ui/ui.tsx";
import { toolResults, totalUsage, type DraftPart, type MessageView, type ToolActivity } from "./chat-state.ts";
import { ToolCard } from "./tool-card.tsx";
import { useChat } from "./use-chat.ts";

type Part = MessageView["parts"][number];
type ToolResultPart = Extract<Part, { type: "tool-result" }>;

/** Text with fenced code blocks kept verbatim; everything else keeps its line breaks. */
function RichText({ text }: { text: string }) {
  const pieces = text.split(/```[^\n]*\n?/);
  return (
    <div className="rich-text">
      {pieces.map((piece, index) => index % 2 === 1 ? <pre key={index} className="code">{piece.replace(/\n$/, "")}</pre> : piece ? <p key={index}>{piece}</p> : null)}
    </div>
  );
}

function Reasoning({ text, live }: { text: string; live?: boolean }) {
  return (
    <details className="reasoning">
      <summary>{live ? "Thinking…" : "Reasoning"}</summary>
      <div className="reasoning-text">{text}</div>
    </details>
  );
}

function UsageNote({ usage }: { usage: MessageView["usage"] }) {
  if (!usage) return null;
  return (
    <div className="usage" title="tokens read and written in this step">
      {formatTokens(usage.inputTokens)} in · {formatTokens(usage.outputTokens)} out
      {usage.cacheReadTokens > 0 && ` · ${formatTokens(usage.cacheReadTokens)} cached`}
      {usage.reasoningTokens > 0 && ` · ${formatTokens(usage.reasoningTokens)} reasoning`}
    </div>
  );
}

interface MessageProps {
  message: MessageView;
  results: Map<string, ToolResultPart>;
  tools: Record<string, ToolActivity>;
  onDecide: (toolCallId: string, approved: boolean) => void;
  deciding: boolean;
  compactedBefore: boolean;
}

const Message = memo(function Message({ message, results, tools, onDecide, deciding, compactedBefore }: MessageProps) {
  if (message.visibility === "model" || message.role === "system" || message.role === "tool") return null;
  const text = message.parts.filter((part) => part.type === "text").map((part) => part.text).join("\n");
  if (message.compressed) {
    return (
      <div className="compaction" data-message-id={message.id}>
        <div className="compaction-rule"><span>Earlier messages were summarized to save context</span></div>
        <details>
          <summary>Compaction summary</summary>
          <RichText text={text.replace(/^Summary of the conversation so far[^\n]*\n+/, "")} />
        </details>
      </div>
    );
  }
  if (message.role === "user") {
    return (
      <div className={`message user${compactedBefore ? " compacted" : ""}`} data-message-id={message.id}>
        <div className="bubble"><RichText text={text} /></div>
      </div>
    );
  }
  return (
    <div className={`message assistant${compactedBefore ? " compacted" : ""}`} data-message-id={message.id}>
      {message.parts.map((part, index) => {
        switch (part.type) {
          case "text":
            return part.text ? <RichText key={index} text={part.text} /> : null;
          case "reasoning":
            return part.text ? <Reasoning key={index} text={part.text} /> : null;
          case "tool-call":
            return (
              <ToolCard key={part.toolCallId} call={part} result={results.get(part.toolCallId)} activity={tools[part.toolCallId]}
                onDecide={(approved) => onDecide(part.toolCallId, approved)} deciding={deciding} />
            );
          default:
            return null;
        }
      })}
      <UsageNote usage={message.usage} />
    </div>
  );
});

function Draft({ draft }: { draft: DraftPart[] }) {
  if (draft.length === 0) return null;
  return (
    <div className="message assistant streaming" aria-live="off">
      {draft.map((part, index) => part.type === "reasoning"
        ? <Reasoning key={index} text={part.text} live={index === draft.length - 1} />
        : <RichText key={index} text={part.text} />)}
    </div>
  );
}

export function Conversation({ chatId }: { chatId: string }) {
  const { state, connection, loadError } = useChat(chatId);
  const queryClient = useQueryClient();
  const status = state.chat?.status;
  const detail = useQuery({
    queryKey: ["chat", chatId],
    queryFn: async () => unwrap(await api.GET("/api/v1/chats/{chat}", { params: { path: { chat: chatId } } })),
  });
  const pendingApprovals = useQuery({
    queryKey: ["chat", chatId, "tool-calls"],
    queryFn: async () => unwrap(await api.GET("/api/v1/chats/{chat}/tool-calls", { params: { path: { chat: chatId } } })).tool_calls,
    enabled: status === "requires_action",
  });
  const childCount = state.messages.filter((message) => message.parts.some((part) => part.type === "tool-result" && part.toolName === "spawn_agent")).length;
  useEffect(() => {
    if (!status) return;
    void queryClient.invalidateQueries({ queryKey: ["chat", chatId] });
    queryClient.setQueryData<Chat[]>(["chats"], (chats) => chats?.map((chat) => (chat.id === chatId ? { ...chat, status } : chat)));
  }, [status, childCount, chatId, queryClient]);

  const decide = useMutation({
    mutationFn: async ({ toolCallId, approved }: { toolCallId: string; approved: boolean }) =>
      unwrap(await api.POST("/api/v1/chats/{chat}/tool-calls/{tool_call_id}/decision", { params: { path: { chat: chatId, tool_call_id: toolCallId } }, body: { approved } })),
    onSettled: () => void queryClient.invalidateQueries({ queryKey: ["chat", chatId, "tool-calls"] }),
  });
  const { mutate: decideMutate } = decide;
  const onDecide = useCallback((toolCallId: string, approved: boolean) => decideMutate({ toolCallId, approved }), [decideMutate]);

  // Approvals come from the stream, and from the API after a reload (the stream may no longer hold the event).
  const tools = useMemo(() => {
    const merged = { ...state.tools };
    for (const pending of pendingApprovals.data ?? []) {
      if (status === "requires_action" && !merged[pending.tool_call_id]) merged[pending.tool_call_id] = { toolName: pending.tool_name, input: pending.input, state: "awaiting_approval" };
    }
    if (status !== "requires_action") {
      for (const [id, activity] of Object.entries(merged)) if (activity.state === "awaiting_approval") delete merged[id];
    }
    return merged;
  }, [state.tools, pendingApprovals.data, status]);

  const results = useMemo(() => toolResults(state.messages), [state.messages]);
  const lastSummary = state.messages.findLast((message) => message.compressed)?.id ?? 0;
  const usage = totalUsage(state.messages);
  const contextTokens = state.messages.findLast((message) => message.role === "assistant" && message.usage)?.usage?.inputTokens ?? 0;

  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useLayoutEffect(() => {
    const element = scroller.current;
    if (element && pinned.current) element.scrollTop = element.scrollHeight;
  });

  if (loadError) return <div className="page"><ErrorNote error={loadError} title="Cannot open this chat" /></div>;
  if (!state.chat) return <div className="page"><Loading what="Loading the conversation" /></div>;
  const chat = state.chat;
  const busy = chat.status === "running" || chat.status === "pending";
  const children = detail.data?.children ?? [];
  const workspace = chat.workspace_id;

  return (
    <div className="conversation">
      <header className="conversation-head">
        <Link to="/chats" className="back-link" aria-label="Back to chats">‹</Link>
        <div className="conversation-title">
          <h1>{chat.title || "Untitled chat"}</h1>
          <div className="conversation-meta">
            <StatusBadge status={chat.status} />
            {chat.parent_chat_id && <Link to={`/chats/${chat.parent_chat_id}`}>sub-agent of parent chat</Link>}
            {workspace && <Link to={`/workspaces/${workspace}`}>workspace</Link>}
            <span className="muted" title="tokens over all steps (context in use now)">
              {formatTokens(usage.input + usage.output)} tokens · context {formatTokens(contextTokens)}
            </span>
            {connection !== "live" && <span className="badge badge-warn" role="status">{connection === "connecting" ? "connecting…" : "reconnecting…"}</span>}
          </div>
        </div>
      </header>
      <div className="messages" ref={scroller} onScroll={(event) => {
        const element = event.currentTarget;
        pinned.current = element.scrollHeight - element.scrollTop - element.clientHeight < 80;
      }} role="log" aria-label="Conversation" aria-busy={busy}>
        {state.messages.map((message) => (
          <Message key={message.id} message={message} results={results} tools={tools} onDecide={onDecide} deciding={decide.isPending} compactedBefore={message.id < lastSummary} />
        ))}
        <Draft draft={state.draft} />
        {busy && state.draft.length === 0 && <p className="muted working" role="status">Working…</p>}
        {state.retry && <p className="notice" role="status">The provider failed ({state.retry.message}); retry {state.retry.attempt} in {Math.round(state.retry.delayMs / 1000)} s.</p>}
        {chat.status === "error" && <p className="error-box" role="alert">The turn failed: {chat.last_error ?? state.error ?? "unknown error"}. Send a message to try again.</p>}
        {decide.isError && <p className="error" role="alert">{errorMessage(decide.error)}</p>}
        {children.length > 0 && <SubAgents chats={children} />}
      </div>
      <Composer chatId={chatId} busy={busy} queue={state.queue} status={chat.status} />
    </div>
  );
}

function SubAgents({ chats }: { chats: Chat[] }) {
  return (
    <section className="sub-agents" aria-label="Sub-agents">
      <h2>Sub-agents</h2>
      <ul>
        {chats.map((child) => (
          <li key={child.id}><Link to={`/chats/${child.id}`}>{child.title || "Sub-agent"}</Link> <StatusBadge status={child.status} /></li>
        ))}
      </ul>
    </section>
  );
}

function Composer({ chatId, busy, queue, status }: { chatId: string; busy: boolean; queue: { id: number; parts: MessageView["parts"] }[]; status: string }) {
  const [text, setText] = useState("");
  const queryClient = useQueryClient();
  const send = useMutation({
    mutationFn: async ({ content, interrupt }: { content: string; interrupt?: boolean }) =>
      unwrap(await api.POST("/api/v1/chats/{chat}/messages", { params: { path: { chat: chatId } }, body: { content, interrupt } })),
    onSuccess: () => {
      setText("");
      void queryClient.invalidateQueries({ queryKey: ["chats"] });
    },
  });
  const interrupt = useMutation({ mutationFn: async () => unwrap(await api.POST("/api/v1/chats/{chat}/interrupt", { params: { path: { chat: chatId } } })) });
  const removeQueued = useMutation({ mutationFn: async (id: number) => unwrap(await api.DELETE("/api/v1/chats/{chat}/queue/{id}", { params: { path: { chat: chatId, id } } })) });
  const promote = useMutation({ mutationFn: async (id: number) => unwrap(await api.POST("/api/v1/chats/{chat}/queue/{id}/promote", { params: { path: { chat: chatId, id } } })) });
  const compact = useMutation({ mutationFn: async () => unwrap(await api.POST("/api/v1/chats/{chat}/compact", { params: { path: { chat: chatId } } })) });

  const submit = (withInterrupt = false) => {
    if (!text.trim() || send.isPending) return;
    send.mutate({ content: text, interrupt: withInterrupt || undefined });
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  const error = send.error ?? interrupt.error ?? removeQueued.error ?? promote.error ?? compact.error;
  return (
    <div className="composer">
      {queue.length > 0 && (
        <section className="queue" aria-label="Queued messages">
          <h2>Queued — delivered when the current turn ends</h2>
          <ol>
            {queue.map((queued, index) => (
              <li key={queued.id} data-queued-id={queued.id}>
                <span className="queued-text">{queued.parts.map((part) => (part.type === "text" ? part.text : "")).join("\n")}</span>
                {index > 0 && <button type="button" className="small" onClick={() => promote.mutate(queued.id)} aria-label="Move to the front of the queue">Send next</button>}
                <button type="button" className="small danger" onClick={() => removeQueued.mutate(queued.id)} aria-label={`Delete queued message ${index + 1}`}>Delete</button>
              </li>
            ))}
          </ol>
        </section>
      )}
      <form className="composer-form" onSubmit={(event) => {
        event.preventDefault();
        submit();
      }}>
        <label htmlFor={`composer-${chatId}`} className="visually-hidden">Message</label>
        <textarea id={`composer-${chatId}`} rows={2} value={text} onChange={(event) => setText(event.target.value)} onKeyDown={onKeyDown}
          placeholder={busy ? "The agent is working; your message will be queued" : "Reply to the agent (Enter sends, Shift+Enter for a new line)"} />
        <div className="composer-actions">
          <button type="submit" className="primary" disabled={!text.trim() || send.isPending}>{busy ? "Queue" : "Send"}</button>
          {busy && text.trim() && <button type="button" onClick={() => submit(true)} disabled={send.isPending}>Send now</button>}
          {busy && <button type="button" className="danger" onClick={() => interrupt.mutate()} disabled={interrupt.isPending}>Stop</button>}
          {!busy && status === "waiting" && <MoreActions onCompact={() => compact.mutate()} compacting={compact.isPending} />}
        </div>
      </form>
      {error && <p className="error" role="alert">{errorMessage(error)}</p>}
      {compact.data && <p className="muted small" role="status">{compact.data.compacted ? "History summarized." : "Nothing to summarize yet."}</p>}
    </div>
  );
}

function MoreActions({ onCompact, compacting }: { onCompact: () => void; compacting: boolean }): ReactNode {
  return (
    <Fragment>
      <button type="button" className="small subtle" onClick={onCompact} disabled={compacting} title="Summarize the history now to free context">{compacting ? "Compacting…" : "Compact"}</button>
    </Fragment>
  );
}
