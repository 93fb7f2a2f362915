import { randomBytes } from "node:crypto";
import { defaultSignature, pathname, splitText, textChunks, turnUsage, type FakeProtocol } from "./fake-server.ts";

/** Anthropic Messages API: `POST /v1/messages` answered with its SSE event stream. */
export const anthropicProtocol: FakeProtocol = {
  transport: "http1",

  matches: (request) => request.method === "POST" && pathname(request.path) === "/v1/messages",

  stream(turn, request) {
    const usage = turnUsage(turn);
    const events: { type: string; [field: string]: unknown }[] = [];
    events.push({
      type: "message_start",
      message: {
        id: `msg_${randomId()}`,
        type: "message",
        role: "assistant",
        model: request.body?.model ?? "claude-fake",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: usage.inputTokens,
          cache_creation_input_tokens: usage.cacheWriteTokens,
          cache_read_input_tokens: usage.cacheReadTokens,
          output_tokens: 1,
        },
      },
    });
    let index = 0;
    if (turn.reasoning !== undefined) {
      events.push({ type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } });
      for (const piece of splitText(turn.reasoning, 3)) {
        events.push({ type: "content_block_delta", index, delta: { type: "thinking_delta", thinking: piece } });
      }
      events.push({ type: "content_block_delta", index, delta: { type: "signature_delta", signature: defaultSignature(turn) } });
      events.push({ type: "content_block_stop", index });
      index++;
    }
    events.push({ type: "ping" });
    const text = textChunks(turn);
    if (text.length) {
      events.push({ type: "content_block_start", index, content_block: { type: "text", text: "" } });
      for (const piece of text) events.push({ type: "content_block_delta", index, delta: { type: "text_delta", text: piece } });
      events.push({ type: "content_block_stop", index });
      index++;
    }
    for (const call of turn.toolCalls ?? []) {
      events.push({ type: "content_block_start", index, content_block: { type: "tool_use", id: call.id ?? `toolu_${randomId()}`, name: call.name, input: {} } });
      // The API opens every tool input with an empty partial before the JSON itself.
      for (const piece of ["", ...splitText(JSON.stringify(call.input), 3)]) {
        events.push({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } });
      }
      events.push({ type: "content_block_stop", index });
      index++;
    }
    const headers = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "request-id": `req_${randomId()}` };
    const frames = events.map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    if (turn.streamError) {
      const { status, message = `fake LLM: scripted ${status} stream error` } = turn.streamError;
      frames.push(`event: error\ndata: ${JSON.stringify({ type: "error", error: { type: errorType(status), message } })}\n\n`);
      return { headers, frames };
    }
    const stopReason = turn.toolCalls?.length ? "tool_use" : turn.stopReason === "length" ? "max_tokens" : "end_turn";
    events.push({
      type: "message_delta",
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: {
        input_tokens: usage.inputTokens,
        cache_creation_input_tokens: usage.cacheWriteTokens,
        cache_read_input_tokens: usage.cacheReadTokens,
        output_tokens: usage.outputTokens,
        ...(usage.reasoningTokens ? { output_tokens_details: { thinking_tokens: usage.reasoningTokens } } : {}),
      },
    });
    events.push({ type: "message_stop" });
    return { headers, frames: events.map((event) => `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`) };
  },

  error(status, message) {
    const requestId = `req_${randomId()}`;
    return {
      headers: { "content-type": "application/json", "request-id": requestId },
      body: JSON.stringify({ type: "error", error: { type: errorType(status), message }, request_id: requestId }),
    };
  },
};

function errorType(status: number): string {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 504:
      return "timeout_error";
    case 529:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

function randomId(): string {
  return randomBytes(12).toString("hex");
}
