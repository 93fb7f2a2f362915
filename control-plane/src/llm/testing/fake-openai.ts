import { randomBytes } from "node:crypto";
import { pathname, searchParams, splitText, textChunks, turnUsage, type FakeProtocol } from "./fake-server.ts";

export interface FakeOpenAiOptions {
  /** "azure" serves `/openai/deployments/{deployment}/chat/completions?api-version=` and Azure's error shape. */
  flavor: "openai" | "azure";
  deployment?: string;
  /** Delta field carrying reasoning text: DeepSeek/vLLM use `reasoning_content`, OpenRouter/Ollama `reasoning`. */
  reasoningField?: "reasoning_content" | "reasoning";
}

/** Chat Completions: SSE of `chat.completion.chunk` objects ending in `data: [DONE]`. */
export function openAiProtocol(options: FakeOpenAiOptions): FakeProtocol {
  const reasoningField = options.reasoningField ?? "reasoning_content";
  return {
    transport: "http1",

    matches(request) {
      if (request.method !== "POST") return false;
      if (options.flavor === "openai") return pathname(request.path) === "/v1/chat/completions";
      return (
        pathname(request.path) === `/openai/deployments/${encodeURIComponent(options.deployment ?? "")}/chat/completions` &&
        searchParams(request.path).has("api-version")
      );
    },

    stream(turn, request) {
      const includeUsage = request.body?.stream_options?.include_usage === true;
      const base = {
        id: `chatcmpl-${randomBytes(12).toString("hex")}`,
        object: "chat.completion.chunk",
        created: Math.floor(Date.now() / 1000),
        model: request.body?.model ?? "gpt-fake",
        system_fingerprint: "fp_fake",
      };
      const chunks: unknown[] = [];
      const choiceChunk = (delta: Record<string, unknown>, finishReason: string | null = null) => ({
        ...base,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...(includeUsage ? { usage: null } : {}),
      });
      if (options.flavor === "azure") {
        // Azure opens with the prompt's content-filter verdict and no choices.
        chunks.push({
          choices: [],
          created: 0,
          id: "",
          model: "",
          object: "",
          prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }],
        });
      }
      chunks.push(choiceChunk({ role: "assistant", content: "", refusal: null }));
      if (turn.reasoning !== undefined) {
        for (const piece of splitText(turn.reasoning, 3)) chunks.push(choiceChunk({ [reasoningField]: piece }));
      }
      for (const piece of textChunks(turn)) chunks.push(choiceChunk({ content: piece }));
      for (const [index, call] of (turn.toolCalls ?? []).entries()) {
        chunks.push(
          choiceChunk({
            tool_calls: [{ index, id: call.id ?? `call_${randomBytes(12).toString("hex")}`, type: "function", function: { name: call.name, arguments: "" } }],
          }),
        );
        for (const piece of splitText(JSON.stringify(call.input), 3)) {
          chunks.push(choiceChunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
        }
      }
      const headers = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-request-id": `req_${randomBytes(8).toString("hex")}` };
      if (turn.streamError) {
        const { status, message = `fake LLM: scripted ${status} stream error` } = turn.streamError;
        // What OpenAI sends when a response fails after it started: an error object in place of a chunk.
        chunks.push({ error: { message, type: openAiType(status), param: null, code: null } });
        return { headers, frames: chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`) };
      }
      const finishReason = turn.toolCalls?.length ? "tool_calls" : turn.stopReason === "length" ? "length" : "stop";
      chunks.push(choiceChunk({}, finishReason));
      if (includeUsage) {
        const usage = turnUsage(turn);
        const promptTokens = usage.inputTokens + usage.cacheReadTokens;
        chunks.push({
          ...base,
          choices: [],
          usage: {
            prompt_tokens: promptTokens,
            completion_tokens: usage.outputTokens,
            total_tokens: promptTokens + usage.outputTokens,
            prompt_tokens_details: { cached_tokens: usage.cacheReadTokens, audio_tokens: 0 },
            completion_tokens_details: { reasoning_tokens: usage.reasoningTokens, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
          },
        });
      }
      return { headers, frames: [...chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`), "data: [DONE]\n\n"] };
    },

    error(status, message) {
      const body =
        options.flavor === "azure"
          ? { error: { code: azureCode(status), message } }
          : { error: { message, type: openAiType(status), param: null, code: openAiCode(status) } };
      return { headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    },
  };
}

function openAiType(status: number): string {
  if (status === 429) return "requests";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

function openAiCode(status: number): string | null {
  if (status === 401) return "invalid_api_key";
  if (status === 404) return "model_not_found";
  if (status === 429) return "rate_limit_exceeded";
  return null;
}

function azureCode(status: number): string {
  if (status === 404) return "DeploymentNotFound";
  if (status === 400) return "BadRequest";
  return String(status);
}
