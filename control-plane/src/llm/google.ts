import { randomUUID } from "node:crypto";
import { ApiError, FinishReason, GoogleGenAI, type Content, type GenerateContentParameters, type GenerateContentResponseUsageMetadata, type Part } from "@google/genai";
import { errorMessage, providerError, runStream, toolInputObject } from "./adapter.ts";
import { emptyUsage, type LlmError, type LlmEvent, type LlmFinishReason, type LlmMessage, type LlmProvider, type LlmRequest, type LlmUsage, type ProviderConfig } from "./types.ts";

/** Gemini API through @google/genai; `baseUrl` replaces https://generativelanguage.googleapis.com. */
export function createGoogleProvider(config: ProviderConfig): LlmProvider {
  const client = new GoogleGenAI({
    vertexai: false,
    apiKey: config.apiKey,
    ...(config.baseUrl ? { httpOptions: { baseUrl: config.baseUrl } } : {}),
  });
  return {
    type: "google",
    stream: (request) =>
      runStream({
        provider: "google",
        signal: request.signal,
        toError: (error) => toLlmError(error, config),
        stream: (signal) => streamContent(client, request, signal),
      }),
  };
}

async function* streamContent(client: GoogleGenAI, request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmEvent> {
  const response = await client.models.generateContentStream(toParams(request, signal));
  const usage = emptyUsage();
  let finish: LlmFinishReason | undefined;
  let calledTools = false;
  for await (const chunk of response) {
    if (chunk.usageMetadata) applyUsage(usage, chunk.usageMetadata);
    if (chunk.promptFeedback?.blockReason) finish = "other";
    const candidate = chunk.candidates?.[0];
    for (const part of candidate?.content?.parts ?? []) {
      // A thought signature belongs to the part it rides on; it is replayed on the part that follows the reasoning.
      if (part.thought) {
        if (part.text) yield { type: "reasoning-delta", text: part.text };
        if (part.thoughtSignature) yield { type: "reasoning-signature", signature: part.thoughtSignature };
        continue;
      }
      if (part.thoughtSignature) yield { type: "reasoning-signature", signature: part.thoughtSignature };
      if (part.text) yield { type: "text-delta", text: part.text };
      if (part.functionCall) {
        calledTools = true;
        yield {
          type: "tool-call",
          // Gemini usually sends no call id; the conversation still needs one to pair results with calls.
          toolCallId: part.functionCall.id ?? `call_${randomUUID()}`,
          toolName: part.functionCall.name ?? "",
          input: part.functionCall.args ?? {},
        };
      }
    }
    if (candidate?.finishReason) finish = finishReason(candidate.finishReason, calledTools);
  }
  if (finish) yield { type: "finish", reason: finish, usage };
}

function toParams(request: LlmRequest, signal: AbortSignal): GenerateContentParameters {
  return {
    model: request.model,
    contents: toContents(request.messages),
    config: {
      abortSignal: signal,
      ...(request.system ? { systemInstruction: request.system } : {}),
      ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
      ...(request.tools?.length
        ? {
            tools: [
              {
                functionDeclarations: request.tools.map((tool) => ({
                  name: tool.name,
                  description: tool.description,
                  parametersJsonSchema: tool.inputSchema,
                })),
              },
            ],
          }
        : {}),
    },
  };
}

/** Function responses go in user turns; consecutive turns of one role are merged because Gemini expects them to alternate. */
function toContents(messages: LlmMessage[]): Content[] {
  const contents: (Content & { parts: Part[] })[] = [];
  for (const message of messages) {
    const role = message.role === "assistant" ? "model" : "user";
    const parts: Part[] = [];
    let pendingSignature: string | undefined;
    for (const part of message.content) {
      if (part.type === "reasoning") {
        // Thought summaries are not sent back; their signature is.
        if (role === "model" && part.signature) pendingSignature = part.signature;
        continue;
      }
      let converted: Part | undefined;
      if (part.type === "text" && part.text) converted = { text: part.text };
      if (part.type === "tool-call" && role === "model") converted = { functionCall: { name: part.toolName, args: toolInputObject(part.input) } };
      if (part.type === "tool-result" && role === "user") {
        converted = { functionResponse: { name: part.toolName, response: part.isError ? { error: part.output } : { output: part.output } } };
      }
      if (!converted) continue;
      if (pendingSignature) {
        converted.thoughtSignature = pendingSignature;
        pendingSignature = undefined;
      }
      parts.push(converted);
    }
    const last = parts.at(-1);
    if (pendingSignature && last && !last.thoughtSignature) last.thoughtSignature = pendingSignature;
    if (parts.length === 0) continue;
    const previous = contents.at(-1);
    if (previous?.role === role) {
      previous.parts.push(...parts);
    } else {
      contents.push({ role, parts });
    }
  }
  for (const content of contents) {
    if (content.role === "user") content.parts.sort((a, b) => Number(Boolean(b.functionResponse)) - Number(Boolean(a.functionResponse)));
  }
  return contents;
}

function applyUsage(usage: LlmUsage, reported: GenerateContentResponseUsageMetadata): void {
  const cached = reported.cachedContentTokenCount ?? 0;
  const thoughts = reported.thoughtsTokenCount ?? 0;
  usage.inputTokens = (reported.promptTokenCount ?? 0) - cached;
  usage.cacheReadTokens = cached;
  // Gemini counts thinking apart from the candidates; our outputTokens includes it.
  usage.outputTokens = (reported.candidatesTokenCount ?? 0) + thoughts;
  usage.reasoningTokens = thoughts;
}

function finishReason(reason: FinishReason, calledTools: boolean): LlmFinishReason {
  if (reason === FinishReason.STOP) return calledTools ? "tool-calls" : "stop";
  if (reason === FinishReason.MAX_TOKENS) return "length";
  return "other";
}

function toLlmError(error: unknown, config: ProviderConfig): LlmError {
  const secrets = [config.apiKey];
  if (error instanceof ApiError) {
    return providerError("google", { status: error.status, message: googleErrorDetail(error.message), cause: error }, secrets);
  }
  return providerError("google", { message: errorMessage(error), cause: error }, secrets);
}

/** The SDK's message is the JSON error body (sometimes after a prefix); pull out `error.status: error.message`. */
function googleErrorDetail(message: string): string {
  const start = message.indexOf("{");
  if (start === -1) return message;
  try {
    const body = JSON.parse(message.slice(start)) as { error?: { message?: unknown; status?: unknown } };
    const detail = typeof body.error?.message === "string" ? body.error.message : message;
    return typeof body.error?.status === "string" ? `${body.error.status}: ${detail}` : detail;
  } catch {
    return message;
  }
}
