import type { LlmEvent, LlmFinishReason, LlmPart, LlmUsage } from "./types.ts";

export interface CollectedResponse {
  /** All text deltas joined. */
  text: string;
  /** All reasoning deltas joined. */
  reasoning: string;
  toolCalls: { toolCallId: string; toolName: string; input: unknown }[];
  finish: { reason: LlmFinishReason; usage: LlmUsage };
  /** The turn as assistant message content, in stream order, ready to append to the conversation. */
  content: LlmPart[];
}

/** Drains a provider stream into one response; `onEvent` sees every event first (e.g. to forward deltas to a client). */
export async function collect(
  stream: AsyncIterable<LlmEvent>,
  onEvent?: (event: LlmEvent) => void | Promise<void>,
): Promise<CollectedResponse> {
  let text = "";
  let reasoning = "";
  const toolCalls: CollectedResponse["toolCalls"] = [];
  const content: LlmPart[] = [];
  let finish: CollectedResponse["finish"] | undefined;
  // The reasoning part still receiving deltas; a signature closes it.
  let openReasoning: Extract<LlmPart, { type: "reasoning" }> | undefined;

  for await (const event of stream) {
    await onEvent?.(event);
    const last = content.at(-1);
    switch (event.type) {
      case "text-delta":
        text += event.text;
        if (last?.type === "text") last.text += event.text;
        else content.push({ type: "text", text: event.text });
        break;
      case "reasoning-delta":
        reasoning += event.text;
        if (openReasoning && last === openReasoning) {
          openReasoning.text += event.text;
        } else {
          openReasoning = { type: "reasoning", text: event.text };
          content.push(openReasoning);
        }
        break;
      case "reasoning-signature":
        if (openReasoning && last === openReasoning) {
          openReasoning.signature = event.signature;
        } else {
          content.push({ type: "reasoning", text: "", signature: event.signature });
        }
        openReasoning = undefined;
        break;
      case "tool-call": {
        const call = { toolCallId: event.toolCallId, toolName: event.toolName, input: event.input };
        toolCalls.push(call);
        content.push({ type: "tool-call", ...call });
        break;
      }
      case "finish":
        finish = { reason: event.reason, usage: event.usage };
        break;
    }
  }
  if (!finish) throw new Error("LLM stream ended without a finish event");
  return { text, reasoning, toolCalls, finish, content };
}
