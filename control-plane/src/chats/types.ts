import { z } from "zod";

export const TextPart = z.object({ type: z.literal("text"), text: z.string() });
export const ReasoningPart = z.object({ type: z.literal("reasoning"), text: z.string(), signature: z.string().optional() });
export const ToolCallPart = z.object({ type: z.literal("tool-call"), toolCallId: z.string(), toolName: z.string(), input: z.unknown() });
export const ToolResultPart = z.object({
  type: z.literal("tool-result"), toolCallId: z.string(), toolName: z.string(), output: z.string(), isError: z.boolean().optional(),
  /** Structured result for clients (diffs, exit codes); never sent to the model. */
  data: z.unknown().optional(),
});
export const FilePart = z.object({ type: z.literal("file"), name: z.string(), mediaType: z.string(), url: z.string() });
export const MessagePart = z.discriminatedUnion("type", [TextPart, ReasoningPart, ToolCallPart, ToolResultPart, FilePart]);
export type MessagePart = z.infer<typeof MessagePart>;
export type ToolCallPart = z.infer<typeof ToolCallPart>;
export type ToolResultPart = z.infer<typeof ToolResultPart>;

export type ChatStatus = "pending" | "running" | "waiting" | "error" | "requires_action";

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

export interface MessageView {
  id: number;
  chat_id: string;
  role: "system" | "user" | "assistant" | "tool";
  parts: MessagePart[];
  usage: Usage | null;
  compressed: boolean;
  visibility: "user" | "model" | "both";
  created_at: string;
}

export interface QueuedView {
  id: number;
  parts: MessagePart[];
  position: number;
  created_at: string;
}

export interface ChatView {
  id: string;
  owner_id: string;
  workspace_id: string | null;
  parent_chat_id: string | null;
  root_chat_id: string | null;
  title: string;
  status: ChatStatus;
  model_id: string | null;
  last_error: string | null;
  archived: boolean;
  created_at: string;
  updated_at: string;
}

/** Everything a chat stream carries; ids are assigned by the event bus. */
export type ChatEvent =
  | { type: "message.delta"; chat_id: string; part: "text" | "reasoning"; delta: string }
  | { type: "message.committed"; chat_id: string; message: MessageView }
  | { type: "status"; chat_id: string; status: ChatStatus; error: string | null }
  | { type: "tool.started"; chat_id: string; tool_call_id: string; tool_name: string; input: unknown }
  | { type: "tool.finished"; chat_id: string; tool_call_id: string; tool_name: string; is_error: boolean; output: string }
  | { type: "approval.required"; chat_id: string; tool_call_id: string; tool_name: string; input: unknown }
  | { type: "queue.updated"; chat_id: string; queue: QueuedView[] }
  | { type: "retry"; chat_id: string; attempt: number; delay_ms: number; message: string }
  | { type: "error"; chat_id: string; message: string };
