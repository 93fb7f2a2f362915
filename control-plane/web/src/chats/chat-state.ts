import type { ChatEvent, ChatView, MessageView, QueuedView } from "../../../src/chats/types.ts";

export type { ChatEvent, ChatView, MessageView, QueuedView };

/** Text and reasoning of the assistant message being generated, before it is committed. */
export interface DraftPart {
  type: "text" | "reasoning";
  text: string;
}

export interface ToolActivity {
  toolName: string;
  input: unknown;
  state: "running" | "finished" | "awaiting_approval";
  isError?: boolean;
  output?: string;
}

/**
 * What the conversation page shows, rebuilt from history plus the chat's event stream.
 * Applying the same event twice changes nothing, so a replay after a reconnect is safe.
 */
export interface ChatState {
  chat: ChatView | null;
  /** Committed messages by id, oldest first. */
  messages: MessageView[];
  draft: DraftPart[];
  /** Tool calls the stream has told about (started, finished, awaiting approval) by tool call id. */
  tools: Record<string, ToolActivity>;
  queue: QueuedView[];
  retry: { attempt: number; delayMs: number; message: string } | null;
  error: string | null;
  /** The id of the last event applied; the stream resumes after it. */
  lastEventId: number | null;
}

export const emptyChatState: ChatState = { chat: null, messages: [], draft: [], tools: {}, queue: [], retry: null, error: null, lastEventId: null };

export type ChatAction =
  | { type: "history"; chat: ChatView; queue: QueuedView[]; messages: MessageView[] }
  | { type: "snapshot"; id: number | null; chat: ChatView; queue: QueuedView[]; messages: MessageView[] }
  | { type: "event"; id: number | null; event: ChatEvent }
  | { type: "reset" };

export function mergeMessages(current: MessageView[], incoming: MessageView[]): MessageView[] {
  if (incoming.length === 0) return current;
  const byId = new Map(current.map((message) => [message.id, message]));
  for (const message of incoming) byId.set(message.id, message);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

function withLastEventId(state: ChatState, id: number | null): ChatState {
  return id === null ? state : { ...state, lastEventId: id };
}

export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case "reset":
      return emptyChatState;
    case "history":
      return { ...state, chat: action.chat, queue: action.queue, messages: mergeMessages(state.messages, action.messages) };
    case "snapshot":
      // A snapshot (a fresh stream, or a resume the server could not replay) is complete up to its id;
      // a half-generated message it does not include is dropped and arrives whole when committed.
      return withLastEventId({ ...state, chat: action.chat, queue: action.queue, messages: mergeMessages(state.messages, action.messages), draft: [] }, action.id);
    case "event":
      if (action.id !== null && state.lastEventId !== null && action.id <= state.lastEventId) return state;
      return withLastEventId(applyEvent(state, action.event), action.id);
  }
}

function applyEvent(state: ChatState, event: ChatEvent): ChatState {
  switch (event.type) {
    case "message.delta": {
      const draft = [...state.draft];
      const last = draft.at(-1);
      if (last && last.type === event.part) draft[draft.length - 1] = { ...last, text: last.text + event.delta };
      else draft.push({ type: event.part, text: event.delta });
      return { ...state, draft, retry: null };
    }
    case "message.committed": {
      const messages = mergeMessages(state.messages, [event.message]);
      const tools = { ...state.tools };
      for (const part of event.message.parts) {
        if (part.type === "tool-result") delete tools[part.toolCallId];
      }
      // The committed assistant message replaces what was streamed for it.
      const draft = event.message.role === "assistant" ? [] : state.draft;
      return { ...state, messages, tools, draft };
    }
    case "status": {
      const chat = state.chat ? { ...state.chat, status: event.status, last_error: event.error } : state.chat;
      const settled = event.status !== "running" && event.status !== "pending";
      return { ...state, chat, retry: settled ? null : state.retry, error: event.status === "error" ? event.error : null, draft: settled && event.status !== "requires_action" ? [] : state.draft };
    }
    case "tool.started":
      return { ...state, tools: { ...state.tools, [event.tool_call_id]: { toolName: event.tool_name, input: event.input, state: "running" } } };
    case "tool.finished":
      return { ...state, tools: { ...state.tools, [event.tool_call_id]: { toolName: event.tool_name, input: state.tools[event.tool_call_id]?.input, state: "finished", isError: event.is_error, output: event.output } } };
    case "approval.required":
      return { ...state, tools: { ...state.tools, [event.tool_call_id]: { toolName: event.tool_name, input: event.input, state: "awaiting_approval" } } };
    case "queue.updated":
      return { ...state, queue: event.queue };
    case "retry":
      return { ...state, retry: { attempt: event.attempt, delayMs: event.delay_ms, message: event.message } };
    case "error":
      return { ...state, error: event.message };
  }
}

/** Results of tool calls by call id, from the committed tool messages. */
export function toolResults(messages: MessageView[]): Map<string, Extract<MessageView["parts"][number], { type: "tool-result" }>> {
  const results = new Map<string, Extract<MessageView["parts"][number], { type: "tool-result" }>>();
  for (const message of messages) {
    for (const part of message.parts) if (part.type === "tool-result") results.set(part.toolCallId, part);
  }
  return results;
}

/** Token totals over the committed messages. */
export function totalUsage(messages: MessageView[]): { input: number; output: number; cacheRead: number; reasoning: number } {
  const total = { input: 0, output: 0, cacheRead: 0, reasoning: 0 };
  for (const message of messages) {
    if (!message.usage) continue;
    total.input += message.usage.inputTokens;
    total.output += message.usage.outputTokens;
    total.cacheRead += message.usage.cacheReadTokens;
    total.reasoning += message.usage.reasoningTokens;
  }
  return total;
}
