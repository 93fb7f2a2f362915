import {
  BedrockRuntimeClient,
  BedrockRuntimeServiceException,
  ConverseStreamCommand,
  type ContentBlock,
  type ConverseStreamCommandInput,
  type Message,
  type StopReason,
  type TokenUsage,
  type ToolUseBlock,
} from "@aws-sdk/client-bedrock-runtime";
import { errorMessage, parseToolInput, providerError, runStream, toolInputObject } from "./adapter.ts";
import { emptyUsage, type LlmError, type LlmEvent, type LlmFinishReason, type LlmMessage, type LlmProvider, type LlmRequest, type LlmUsage, type ProviderConfig } from "./types.ts";

/** The SDK's JSON document type, which our `unknown` tool inputs and schemas are. */
type Document = NonNullable<ToolUseBlock["input"]>;

/**
 * Bedrock Converse API. Credentials: access keys from the config, else a Bedrock API key (`apiKey`, sent as a
 * bearer token), else the AWS default chain (environment, profile, instance role).
 */
export function createBedrockProvider(config: ProviderConfig): LlmProvider {
  const client = new BedrockRuntimeClient({
    region: config.region,
    maxAttempts: 1,
    ...(config.baseUrl ? { endpoint: config.baseUrl } : {}),
    ...(config.accessKeyId && config.secretAccessKey
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey, sessionToken: config.sessionToken } }
      : config.apiKey
        ? { token: { token: config.apiKey }, authSchemePreference: ["httpBearerAuth"] }
        : {}),
  });
  return {
    type: "bedrock",
    stream: (request) =>
      runStream({
        provider: "bedrock",
        signal: request.signal,
        toError: (error) => toLlmError(error, config),
        stream: (signal) => streamConverse(client, request, signal),
      }),
  };
}

async function* streamConverse(client: BedrockRuntimeClient, request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmEvent> {
  const response = await client.send(new ConverseStreamCommand(toInput(request)), { abortSignal: signal });
  const usage = emptyUsage();
  const toolCalls = new Map<number, { id: string; name: string; json: string }>();
  let stopReason: StopReason | undefined;
  for await (const event of response.stream ?? []) {
    if (event.contentBlockStart?.start?.toolUse) {
      const { toolUseId, name } = event.contentBlockStart.start.toolUse;
      toolCalls.set(event.contentBlockStart.contentBlockIndex ?? 0, { id: toolUseId ?? "", name: name ?? "", json: "" });
    }
    if (event.contentBlockDelta?.delta) {
      const delta = event.contentBlockDelta.delta;
      if (delta.text) yield { type: "text-delta", text: delta.text };
      if (delta.reasoningContent?.text) yield { type: "reasoning-delta", text: delta.reasoningContent.text };
      if (delta.reasoningContent?.signature) yield { type: "reasoning-signature", signature: delta.reasoningContent.signature };
      if (delta.toolUse?.input !== undefined) {
        const call = toolCalls.get(event.contentBlockDelta.contentBlockIndex ?? 0);
        if (call) call.json += delta.toolUse.input;
      }
    }
    if (event.contentBlockStop) {
      const index = event.contentBlockStop.contentBlockIndex ?? 0;
      const call = toolCalls.get(index);
      if (call) {
        toolCalls.delete(index);
        yield { type: "tool-call", toolCallId: call.id, toolName: call.name, input: parseToolInput(call.json) };
      }
    }
    if (event.messageStop) stopReason = event.messageStop.stopReason;
    if (event.metadata?.usage) applyUsage(usage, event.metadata.usage);
    const streamError =
      event.internalServerException ?? event.modelStreamErrorException ?? event.serviceUnavailableException ?? event.throttlingException ?? event.validationException;
    if (streamError) throw streamError;
  }
  // Usage arrives in the metadata event after messageStop, so finish is sent once the stream ends.
  if (stopReason) yield { type: "finish", reason: finishReason(stopReason), usage };
}

function toInput(request: LlmRequest): ConverseStreamCommandInput {
  return {
    modelId: request.model,
    messages: toMessages(request.messages, request.model),
    ...(request.system ? { system: [{ text: request.system }] } : {}),
    ...(request.maxOutputTokens === undefined ? {} : { inferenceConfig: { maxTokens: request.maxOutputTokens } }),
    ...(request.tools?.length
      ? {
          toolConfig: {
            tools: request.tools.map((tool) => ({
              toolSpec: { name: tool.name, description: tool.description, inputSchema: { json: tool.inputSchema as Document } },
            })),
          },
        }
      : {}),
  };
}

/** Tool results go in user turns, ahead of any text, and turns must alternate. */
function toMessages(messages: LlmMessage[], modelId: string): Message[] {
  // Only Anthropic models on Bedrock accept a toolResult status; others reject the field.
  const toolResultStatus = modelId.includes("anthropic.");
  const result: (Message & { role: "user" | "assistant"; content: ContentBlock[] })[] = [];
  for (const message of messages) {
    const role = message.role === "assistant" ? "assistant" : "user";
    const content: ContentBlock[] = [];
    for (const part of message.content) {
      switch (part.type) {
        case "text":
          if (part.text) content.push({ text: part.text });
          break;
        case "reasoning":
          // Claude on Bedrock accepts reasoning back only with its signature.
          if (role === "assistant" && part.signature) content.push({ reasoningContent: { reasoningText: { text: part.text, signature: part.signature } } });
          break;
        case "tool-call":
          if (role === "assistant") content.push({ toolUse: { toolUseId: part.toolCallId, name: part.toolName, input: toolInputObject(part.input) as Document } });
          break;
        case "tool-result":
          if (role === "user") {
            content.push({
              toolResult: {
                toolUseId: part.toolCallId,
                content: [{ text: part.output }],
                ...(toolResultStatus ? { status: part.isError ? "error" : "success" } : {}),
              },
            });
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
    if (message.role === "user") message.content.sort((a, b) => Number(Boolean(b.toolResult)) - Number(Boolean(a.toolResult)));
  }
  return result;
}

function applyUsage(usage: LlmUsage, reported: TokenUsage): void {
  usage.inputTokens = reported.inputTokens ?? 0;
  usage.outputTokens = reported.outputTokens ?? 0;
  usage.cacheReadTokens = reported.cacheReadInputTokens ?? 0;
  usage.cacheWriteTokens = reported.cacheWriteInputTokens ?? 0;
}

function finishReason(reason: StopReason): LlmFinishReason {
  switch (reason) {
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

/** Exceptions sent inside the event stream arrive on a 200 response; their type says what status they stand for. */
const statusByException: Record<string, number> = {
  ValidationException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ModelTimeoutException: 408,
  ConflictException: 409,
  ModelErrorException: 424,
  ThrottlingException: 429,
  ServiceQuotaExceededException: 429,
  InternalServerException: 500,
  ModelStreamErrorException: 500,
  ServiceUnavailableException: 503,
};

function toLlmError(error: unknown, config: ProviderConfig): LlmError {
  const secrets = [config.apiKey, config.secretAccessKey, config.sessionToken];
  if (error instanceof BedrockRuntimeServiceException) {
    const httpStatus = error.$metadata?.httpStatusCode;
    const status = httpStatus !== undefined && httpStatus >= 400 ? httpStatus : statusByException[error.name];
    return providerError("bedrock", { status, message: `${error.name}: ${error.message}`, cause: error }, secrets);
  }
  return providerError("bedrock", { message: errorMessage(error), cause: error }, secrets);
}
