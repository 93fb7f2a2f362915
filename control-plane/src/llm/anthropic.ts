import Anthropic, { APIConnectionError, APIError } from "@anthropic-ai/sdk";
import type {
  ContentBlockParam,
  MessageCreateParamsStreaming,
  MessageDeltaUsage,
  MessageParam,
  StopReason,
  TextBlockParam,
  Usage,
} from "@anthropic-ai/sdk/resources/messages";
import { errorMessage, parseToolInput, providerError, runStream, toolInputObject } from "./adapter.ts";
import { httpFetch } from "./http-fetch.ts";
import { emptyUsage, type LlmError, type LlmEvent, type LlmFinishReason, type LlmMessage, type LlmProvider, type LlmRequest, type LlmUsage, type ProviderConfig } from "./types.ts";

/** The Messages API requires max_tokens; used when the request does not set one. */
const defaultMaxOutputTokens = 8192;

export function createAnthropicProvider(config: ProviderConfig): LlmProvider {
  const client = new Anthropic({
    apiKey: config.apiKey,
    // With a key configured, an ANTHROPIC_AUTH_TOKEN in this server's environment must not ride along.
    ...(config.apiKey ? { authToken: null } : {}),
    baseURL: config.baseUrl,
    maxRetries: 0,
    fetch: httpFetch,
    // Kiln sets up no OpenTelemetry; the SDK's no-op spans still cost ~0.1 ms per call.
    openTelemetry: false,
  });
  return {
    type: "anthropic",
    stream: (request) =>
      runStream({
        provider: "anthropic",
        signal: request.signal,
        toError: (error) => toLlmError(error, config),
        stream: (signal) => streamMessage(client, request, signal),
      }),
  };
}

async function* streamMessage(client: Anthropic, request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmEvent> {
  const response = await client.messages.create(toParams(request), { signal });
  const usage = emptyUsage();
  const toolCalls = new Map<number, { id: string; name: string; json: string }>();
  let stopReason: StopReason | null = null;
  for await (const event of response) {
    switch (event.type) {
      case "message_start":
        applyUsage(usage, event.message.usage);
        break;
      case "content_block_start": {
        const block = event.content_block;
        if (block.type === "tool_use") toolCalls.set(event.index, { id: block.id, name: block.name, json: "" });
        if (block.type === "text" && block.text) yield { type: "text-delta", text: block.text };
        if (block.type === "thinking" && block.thinking) yield { type: "reasoning-delta", text: block.thinking };
        break;
      }
      case "content_block_delta": {
        const delta = event.delta;
        if (delta.type === "text_delta") yield { type: "text-delta", text: delta.text };
        if (delta.type === "thinking_delta") yield { type: "reasoning-delta", text: delta.thinking };
        if (delta.type === "signature_delta") yield { type: "reasoning-signature", signature: delta.signature };
        if (delta.type === "input_json_delta") {
          const call = toolCalls.get(event.index);
          if (call) call.json += delta.partial_json;
        }
        break;
      }
      case "content_block_stop": {
        const call = toolCalls.get(event.index);
        if (!call) break;
        toolCalls.delete(event.index);
        yield { type: "tool-call", toolCallId: call.id, toolName: call.name, input: parseToolInput(call.json) };
        break;
      }
      case "message_delta":
        stopReason = event.delta.stop_reason ?? stopReason;
        applyUsage(usage, event.usage);
        break;
      case "message_stop":
        yield { type: "finish", reason: finishReason(stopReason), usage };
        break;
    }
  }
}

function toParams(request: LlmRequest): MessageCreateParamsStreaming {
  const system: TextBlockParam[] | undefined = request.system
    ? [{ type: "text", text: request.system, cache_control: { type: "ephemeral" } }]
    : undefined;
  return {
    model: request.model,
    max_tokens: request.maxOutputTokens ?? defaultMaxOutputTokens,
    stream: true,
    ...(system ? { system } : {}),
    messages: markCacheBreakpoint(toMessages(request.messages)),
    ...(request.tools?.length
      ? {
          tools: request.tools.map((tool) => ({
            name: tool.name,
            description: tool.description,
            input_schema: { ...tool.inputSchema, type: "object" as const },
          })),
        }
      : {}),
  };
}

/**
 * Tool results go in user turns and must lead them, and turns alternate,
 * so a tool message and the user message after it become one user turn.
 */
function toMessages(messages: LlmMessage[]): MessageParam[] {
  const result: { role: "user" | "assistant"; content: ContentBlockParam[] }[] = [];
  for (const message of messages) {
    const role = message.role === "assistant" ? "assistant" : "user";
    const content: ContentBlockParam[] = [];
    for (const part of message.content) {
      switch (part.type) {
        case "text":
          if (part.text) content.push({ type: "text", text: part.text });
          break;
        case "reasoning":
          // A thinking block is only accepted back with the signature the API gave it.
          if (role === "assistant" && part.signature) content.push({ type: "thinking", thinking: part.text, signature: part.signature });
          break;
        case "tool-call":
          if (role === "assistant") content.push({ type: "tool_use", id: part.toolCallId, name: part.toolName, input: toolInputObject(part.input) });
          break;
        case "tool-result":
          if (role === "user") {
            content.push({ type: "tool_result", tool_use_id: part.toolCallId, content: part.output, ...(part.isError ? { is_error: true } : {}) });
          }
          break;
      }
    }
    if (content.length === 0) continue;
    const previous = result.at(-1);
    if (previous?.role === role) {
      previous.content.push(...content);
    } else {
      result.push({ role, content });
    }
  }
  for (const message of result) {
    if (message.role === "user") message.content.sort((a, b) => Number(b.type === "tool_result") - Number(a.type === "tool_result"));
  }
  return result;
}

/** Caches the conversation prefix up to the newest block, so the next turn of an agent loop reads it from cache. */
function markCacheBreakpoint(messages: MessageParam[]): MessageParam[] {
  const last = messages.at(-1);
  if (!last || typeof last.content === "string") return messages;
  const block = last.content.at(-1);
  if (block && (block.type === "text" || block.type === "tool_result" || block.type === "tool_use")) {
    block.cache_control = { type: "ephemeral" };
  }
  return messages;
}

function applyUsage(usage: LlmUsage, reported: Usage | MessageDeltaUsage): void {
  if (reported.input_tokens != null) usage.inputTokens = reported.input_tokens;
  if (reported.output_tokens != null) usage.outputTokens = reported.output_tokens;
  if (reported.cache_read_input_tokens != null) usage.cacheReadTokens = reported.cache_read_input_tokens;
  if (reported.cache_creation_input_tokens != null) usage.cacheWriteTokens = reported.cache_creation_input_tokens;
  if (reported.output_tokens_details?.thinking_tokens != null) usage.reasoningTokens = reported.output_tokens_details.thinking_tokens;
}

function finishReason(stopReason: StopReason | null): LlmFinishReason {
  switch (stopReason) {
    case "end_turn":
    case "stop_sequence":
      return "stop";
    case "tool_use":
      return "tool-calls";
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    default:
      return "other";
  }
}

/** Errors sent inside the event stream carry a type but no HTTP status. */
const statusByErrorType: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  conflict_error: 409,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

function toLlmError(error: unknown, config: ProviderConfig): LlmError {
  const secrets = [config.apiKey];
  if (error instanceof APIConnectionError) {
    return providerError("anthropic", { message: error.message, retryable: true, cause: error }, secrets);
  }
  if (error instanceof APIError) {
    const status = error.status ?? (error.type ? statusByErrorType[error.type] : undefined);
    const detail = error.apiMessage ?? error.message;
    return providerError("anthropic", { status, message: error.type ? `${error.type}: ${detail}` : detail, cause: error }, secrets);
  }
  return providerError("anthropic", { message: errorMessage(error), cause: error }, secrets);
}
