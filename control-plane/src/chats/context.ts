import type { LlmMessage, LlmPart } from "../llm/index.ts";
import type { Message } from "./store.ts";
import type { MessagePart } from "./types.ts";

/** Turns stored messages into the provider-neutral conversation, merging adjacent user turns. */
export function toLlmMessages(messages: Message[]): LlmMessage[] {
  const result: LlmMessage[] = [];
  for (const message of messages) {
    const parts = message.parts as MessagePart[];
    if (message.role === "system") continue;
    if (message.role === "user") {
      const content: LlmPart[] = parts.flatMap((part): LlmPart[] => {
        if (part.type === "text") return [{ type: "text", text: part.text }];
        if (part.type === "file") return [{ type: "text", text: `[attached file ${part.name} (${part.mediaType})]` }];
        return [];
      });
      if (content.length === 0) continue;
      const previous = result.at(-1);
      if (previous?.role === "user") previous.content.push(...content);
      else result.push({ role: "user", content });
      continue;
    }
    if (message.role === "assistant") {
      const content: LlmPart[] = parts.flatMap((part): LlmPart[] => {
        if (part.type === "text") return part.text ? [{ type: "text", text: part.text }] : [];
        if (part.type === "reasoning") return [{ type: "reasoning", text: part.text, ...(part.signature ? { signature: part.signature } : {}) }];
        if (part.type === "tool-call") return [{ type: "tool-call", toolCallId: part.toolCallId, toolName: part.toolName, input: part.input }];
        return [];
      });
      if (content.length > 0) result.push({ role: "assistant", content });
      continue;
    }
    const content: LlmPart[] = parts.flatMap((part): LlmPart[] =>
      part.type === "tool-result" ? [{ type: "tool-result", toolCallId: part.toolCallId, toolName: part.toolName, output: part.output, ...(part.isError ? { isError: true } : {}) }] : []);
    if (content.length > 0) result.push({ role: "tool", content });
  }
  return result;
}

export function toolCallsOf(message: Message | undefined): Extract<MessagePart, { type: "tool-call" }>[] {
  if (!message || message.role !== "assistant") return [];
  return (message.parts as MessagePart[]).filter((part): part is Extract<MessagePart, { type: "tool-call" }> => part.type === "tool-call");
}

export function lastAssistantText(messages: Message[]): string {
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index]!;
    if (message.role !== "assistant") continue;
    const text = (message.parts as MessagePart[]).filter((part) => part.type === "text").map((part) => (part as { text: string }).text).join("");
    if (text) return text;
  }
  return "";
}
