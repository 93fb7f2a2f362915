import { LlmError, type LlmEvent, type ProviderType } from "./types.ts";

/** Helpers shared by the provider adapters; not part of the module's public surface. */

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

const networkErrorCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_INVALID_SESSION",
]);

/** True when the error (or one of its causes) is a connection-level failure rather than an HTTP answer. */
export function isNetworkError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && networkErrorCodes.has(code)) return true;
    if (current instanceof TypeError && current.message === "fetch failed") return true;
    if (current.name === "TimeoutError") return true;
    current = current.cause;
  }
  return false;
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Builds the LlmError every adapter throws: "<provider> request failed (<status>): <detail>", secrets removed. */
export function providerError(
  provider: ProviderType,
  details: { status?: number; message: string; retryable?: boolean; cause?: unknown },
  secrets: readonly (string | undefined)[] = [],
): LlmError {
  const { status, cause } = details;
  const retryable = details.retryable ?? (status === undefined ? isNetworkError(cause) : isRetryableStatus(status));
  let message = `${provider} request failed${status === undefined ? "" : ` (${status})`}: ${details.message}`;
  for (const secret of secrets) {
    if (secret && secret.length >= 4) message = message.split(secret).join("[redacted]");
  }
  return new LlmError(message, { status, retryable, provider, cause });
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/**
 * Runs one adapter stream with the behaviour every provider shares:
 * abort via the caller's signal throws the signal's reason, any other failure becomes an LlmError,
 * a stream that ends without `finish` is an error, and a consumer that stops early closes the request.
 */
export async function* runStream(options: {
  provider: ProviderType;
  signal: AbortSignal | undefined;
  toError: (error: unknown) => LlmError;
  stream: (signal: AbortSignal) => AsyncIterable<LlmEvent>;
}): AsyncGenerator<LlmEvent> {
  const { provider, signal } = options;
  if (signal?.aborted) throw abortReason(signal);
  const controller = new AbortController();
  const forwardAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", forwardAbort, { once: true });
  let finished = false;
  try {
    for await (const event of options.stream(controller.signal)) {
      if (signal?.aborted) break;
      if (event.type === "finish") finished = true;
      yield event;
    }
  } catch (error) {
    if (signal?.aborted) throw abortReason(signal);
    if (error instanceof LlmError) throw error;
    throw options.toError(error);
  } finally {
    signal?.removeEventListener("abort", forwardAbort);
    controller.abort();
  }
  if (signal?.aborted) throw abortReason(signal);
  if (!finished) {
    throw new LlmError(`${provider} request failed: the response stream ended before the model finished`, { retryable: true, provider });
  }
}

/** Parses streamed tool arguments; arguments that are not valid JSON are passed on as the raw string. */
export function parseToolInput(json: string): unknown {
  if (json.trim() === "") return {};
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}

/** Providers that store tool input as an object need one even when the model produced something else. */
export function toolInputObject(input: unknown): Record<string, unknown> {
  if (typeof input === "object" && input !== null && !Array.isArray(input)) return input as Record<string, unknown>;
  return {};
}
