import { randomUUID } from "node:crypto";
import OpenAI, { APIConnectionError, APIError, AzureOpenAI } from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionContentPartText,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
} from "openai/resources/chat/completions";
import type { CompletionUsage } from "openai/resources/completions";
import { errorMessage, parseToolInput, providerError, runStream } from "./adapter.ts";
import { httpFetch } from "./http-fetch.ts";
import { emptyUsage, type LlmError, type LlmEvent, type LlmFinishReason, type LlmMessage, type LlmProvider, type LlmRequest, type LlmUsage, type ProviderConfig } from "./types.ts";

type OpenAiProviderType = "openai" | "azure-openai" | "openai-compatible";

/** Chat Completions for OpenAI itself, Azure OpenAI deployments and any OpenAI-compatible server. */
export function createOpenAiProvider(config: ProviderConfig & { type: OpenAiProviderType }): LlmProvider {
  const provider = config.type;
  const client = createClient(config);
  return {
    type: provider,
    stream: (request) =>
      runStream({
        provider,
        signal: request.signal,
        toError: (error) => toLlmError(error, config),
        stream: (signal) => streamCompletion(client, config, request, signal),
      }),
  };
}

function createClient(config: ProviderConfig & { type: OpenAiProviderType }): OpenAI {
  try {
    if (config.type === "azure-openai") {
      if (!config.baseUrl) throw new Error("baseUrl (the resource endpoint, https://<resource>.openai.azure.com) is required");
      // Passing the base URL ourselves instead of `endpoint` keeps OPENAI_BASE_URL in the environment from conflicting with it.
      return new AzureOpenAI({
        apiKey: config.apiKey,
        baseURL: azureBaseUrl(config.baseUrl),
        apiVersion: config.apiVersion,
        deployment: config.deployment,
        maxRetries: 0,
        fetch: httpFetch,
      });
    }
    if (config.type === "openai-compatible") {
      if (!config.baseUrl) throw new Error("baseUrl is required");
      // Local servers often need no key; the SDK insists on one, so send a placeholder and drop the header.
      return new OpenAI({
        apiKey: config.apiKey ?? "unused",
        baseURL: config.baseUrl,
        maxRetries: 0,
        fetch: httpFetch,
        ...(config.apiKey ? {} : { defaultHeaders: { Authorization: null } }),
      });
    }
    // The provider config is the whole truth: no organization or project picked up from this server's environment.
    return new OpenAI({ apiKey: config.apiKey, baseURL: config.baseUrl, organization: null, project: null, maxRetries: 0, fetch: httpFetch });
  } catch (error) {
    throw providerError(config.type, { message: `invalid provider config: ${errorMessage(error)}`, retryable: false, cause: error }, [config.apiKey]);
  }
}

function azureBaseUrl(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, "");
  return trimmed.endsWith("/openai") ? trimmed : `${trimmed}/openai`;
}

/** Reasoning text as OpenAI-compatible servers stream it (DeepSeek, vLLM: `reasoning_content`; OpenRouter, Ollama: `reasoning`). */
interface ReasoningDelta {
  reasoning_content?: unknown;
  reasoning?: unknown;
}

async function* streamCompletion(client: OpenAI, config: ProviderConfig, request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmEvent> {
  const stream = await client.chat.completions.create(toParams(config, request), { signal });
  const usage = emptyUsage();
  const toolCalls = new Map<number, { id: string; name: string; arguments: string }>();
  let finishReasonSeen: ChatCompletionChunk.Choice["finish_reason"] = null;
  let toolCallsEmitted = 0;
  let lastIndex = -1;

  // Some compatible servers leave out the index: a new id starts a new call, no id continues the last one.
  function implicitIndex(id: string | undefined): number {
    const current = toolCalls.get(lastIndex);
    if (current && (!id || id === current.id)) return lastIndex;
    return lastIndex + 1;
  }

  function* completedToolCalls(): Generator<LlmEvent> {
    for (const [index, call] of [...toolCalls].sort(([a], [b]) => a - b)) {
      toolCalls.delete(index);
      toolCallsEmitted++;
      // A few compatible servers send no call id; results still need one to point at.
      yield { type: "tool-call", toolCallId: call.id || `call_${randomUUID()}`, toolName: call.name, input: parseToolInput(call.arguments) };
    }
  }

  for await (const chunk of stream) {
    if (chunk.usage) applyUsage(usage, chunk.usage);
    // Azure sends a first chunk with no choices (prompt filter results); the usage chunk has none either.
    for (const choice of chunk.choices ?? []) {
      if (choice.index !== 0) continue;
      const delta = choice.delta as ChatCompletionChunk.Choice.Delta & ReasoningDelta;
      const reasoning = typeof delta.reasoning_content === "string" ? delta.reasoning_content : delta.reasoning;
      if (typeof reasoning === "string" && reasoning) yield { type: "reasoning-delta", text: reasoning };
      if (delta.content) yield { type: "text-delta", text: delta.content };
      for (const toolCall of delta.tool_calls ?? []) {
        const index = typeof toolCall.index === "number" ? toolCall.index : implicitIndex(toolCall.id);
        lastIndex = index;
        const call = toolCalls.get(index);
        if (!call) {
          toolCalls.set(index, { id: toolCall.id ?? "", name: toolCall.function?.name ?? "", arguments: toolCall.function?.arguments ?? "" });
          continue;
        }
        if (toolCall.id && !call.id) call.id = toolCall.id;
        if (toolCall.function?.name && !call.name) call.name = toolCall.function.name;
        call.arguments += toolCall.function?.arguments ?? "";
      }
      if (choice.finish_reason) {
        finishReasonSeen = choice.finish_reason;
        yield* completedToolCalls();
      }
    }
  }
  yield* completedToolCalls();
  yield { type: "finish", reason: finishReason(finishReasonSeen, toolCallsEmitted > 0), usage };
}

function toParams(config: ProviderConfig, request: LlmRequest): ChatCompletionCreateParamsStreaming {
  const messages: ChatCompletionMessageParam[] = [];
  if (request.system) messages.push({ role: "system", content: request.system });
  messages.push(...toMessages(request.messages));
  const maxTokens =
    request.maxOutputTokens === undefined
      ? {}
      : config.type === "openai-compatible"
        ? // Many compatible servers only know the older name.
          { max_tokens: request.maxOutputTokens }
        : { max_completion_tokens: request.maxOutputTokens };
  return {
    model: request.model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    ...maxTokens,
    ...(request.tools?.length
      ? {
          tools: request.tools.map((tool) => ({
            type: "function" as const,
            function: { name: tool.name, description: tool.description, parameters: tool.inputSchema },
          })),
        }
      : {}),
  };
}

/** Tool results become one `tool` message each, right after the assistant message that called them. */
function toMessages(messages: LlmMessage[]): ChatCompletionMessageParam[] {
  const result: ChatCompletionMessageParam[] = [];
  for (const message of messages) {
    const texts: ChatCompletionContentPartText[] = [];
    const toolCalls: ChatCompletionMessageFunctionToolCall[] = [];
    for (const part of message.content) {
      if (part.type === "text" && part.text) texts.push({ type: "text", text: part.text });
      if (part.type === "tool-call" && message.role === "assistant") {
        toolCalls.push({
          id: part.toolCallId,
          type: "function",
          function: { name: part.toolName, arguments: typeof part.input === "string" ? part.input : JSON.stringify(part.input ?? {}) },
        });
      }
      if (part.type === "tool-result" && message.role !== "assistant") {
        result.push({ role: "tool", tool_call_id: part.toolCallId, content: part.output });
      }
    }
    if (message.role === "assistant") {
      if (texts.length === 0 && toolCalls.length === 0) continue;
      result.push({
        role: "assistant",
        content: texts.length ? texts.map((text) => text.text).join("") : null,
        ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
      });
      continue;
    }
    if (texts.length === 0) continue;
    // A plain string is what every compatible server understands; several parts need the array form.
    result.push({ role: "user", content: texts.length === 1 ? (texts[0]?.text ?? "") : texts });
  }
  return result;
}

function applyUsage(usage: LlmUsage, reported: CompletionUsage): void {
  const cached = reported.prompt_tokens_details?.cached_tokens ?? 0;
  usage.inputTokens = reported.prompt_tokens - cached;
  usage.cacheReadTokens = cached;
  usage.outputTokens = reported.completion_tokens;
  usage.reasoningTokens = reported.completion_tokens_details?.reasoning_tokens ?? 0;
}

function finishReason(reason: ChatCompletionChunk.Choice["finish_reason"], calledTools: boolean): LlmFinishReason {
  if (calledTools && (reason === null || reason === "stop" || reason === "tool_calls" || reason === "function_call")) return "tool-calls";
  switch (reason) {
    case "stop":
      return "stop";
    case "tool_calls":
    case "function_call":
      return "tool-calls";
    case "length":
      return "length";
    default:
      return "other";
  }
}

function toLlmError(error: unknown, config: ProviderConfig): LlmError {
  const secrets = [config.apiKey];
  if (error instanceof APIConnectionError) {
    return providerError(config.type, { message: error.message, retryable: true, cause: error }, secrets);
  }
  if (error instanceof APIError) {
    const body = (error.error ?? {}) as { message?: unknown; code?: unknown };
    const detail = typeof body.message === "string" ? body.message : error.message;
    // Errors inside the stream have no HTTP status; OpenRouter and others put one in `code`, OpenAI only a type.
    const status = error.status ?? (typeof body.code === "number" ? body.code : error.type === "server_error" ? 500 : undefined);
    // Azure's code is often just the status again.
    const code = typeof body.code === "string" && body.code && body.code !== String(status) ? `${body.code}: ` : "";
    return providerError(config.type, { status, message: `${code}${detail}`, cause: error }, secrets);
  }
  return providerError(config.type, { message: errorMessage(error), cause: error }, secrets);
}
