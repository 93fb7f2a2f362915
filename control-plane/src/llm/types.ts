export type ProviderType = "anthropic" | "openai" | "azure-openai" | "openai-compatible" | "google" | "bedrock";

export const providerTypes: readonly ProviderType[] = ["anthropic", "openai", "azure-openai", "openai-compatible", "google", "bedrock"];

export type LlmPart =
  | { type: "text"; text: string }
  /** `signature` is opaque provider state (Anthropic/Bedrock thinking signature, Gemini thought signature) that must be sent back unchanged. */
  | { type: "reasoning"; text: string; signature?: string }
  | { type: "tool-call"; toolCallId: string; toolName: string; input: unknown }
  | { type: "tool-result"; toolCallId: string; toolName: string; output: string; isError?: boolean };

export type LlmMessage =
  /** Text parts; tool-result parts are accepted too and placed where each provider wants them. */
  | { role: "user"; content: LlmPart[] }
  /** Text, reasoning and tool-call parts, in the order the model produced them. */
  | { role: "assistant"; content: LlmPart[] }
  /** Tool-result parts answering the tool calls of the preceding assistant message. */
  | { role: "tool"; content: LlmPart[] };

export interface LlmTool {
  name: string;
  description: string;
  /** JSON Schema of the tool's input object. */
  inputSchema: Record<string, unknown>;
}

export interface LlmRequest {
  model: string;
  system?: string;
  messages: LlmMessage[];
  tools?: LlmTool[];
  maxOutputTokens?: number;
  signal?: AbortSignal;
}

/**
 * Token counts in disjoint buckets where the provider allows it:
 * `inputTokens` excludes `cacheReadTokens` and `cacheWriteTokens` (so total input is their sum);
 * `outputTokens` includes `reasoningTokens`.
 */
export interface LlmUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

export type LlmFinishReason = "stop" | "tool-calls" | "length" | "other";

export type LlmEvent =
  | { type: "text-delta"; text: string }
  | { type: "reasoning-delta"; text: string }
  /** Closes the reasoning that preceded it; belongs to the reasoning part it ends. */
  | { type: "reasoning-signature"; signature: string }
  /** Emitted once the call's arguments are complete. */
  | { type: "tool-call"; toolCallId: string; toolName: string; input: unknown }
  | { type: "finish"; reason: LlmFinishReason; usage: LlmUsage };

export interface LlmProvider {
  readonly type: ProviderType;
  /**
   * Streams one model turn. Ends with exactly one `finish` event, or throws:
   * an `LlmError` for provider and network failures, `request.signal.reason` when aborted.
   */
  stream(request: LlmRequest): AsyncIterable<LlmEvent>;
}

export interface ProviderConfig {
  type: ProviderType;
  apiKey?: string;
  baseUrl?: string;
  /** azure-openai */
  apiVersion?: string;
  /** azure-openai */
  deployment?: string;
  /** bedrock */
  region?: string;
  /** bedrock */
  accessKeyId?: string;
  /** bedrock */
  secretAccessKey?: string;
  /** bedrock */
  sessionToken?: string;
}

export interface LlmErrorOptions {
  status?: number;
  /** True when the same request may succeed later (rate limits, overload, 5xx, network). */
  retryable: boolean;
  provider: ProviderType;
  cause?: unknown;
}

export class LlmError extends Error {
  override readonly name = "LlmError";

  constructor(
    message: string,
    readonly options: LlmErrorOptions,
  ) {
    super(message, { cause: options.cause });
  }
}

export function emptyUsage(): LlmUsage {
  return { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
}
