import createClient from "openapi-fetch";
import type { components, paths } from "./schema.ts";

export type Schemas = components["schemas"];
export type KilnClient = ReturnType<typeof createKilnClient>;

/** The typed API client used by the CLI (and the dashboard), derived from the committed OpenAPI document. */
export function createKilnClient(options: { url: string; token?: string | null; fetch?: typeof fetch }) {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return createClient<paths>({ baseUrl: options.url.replace(/\/$/, ""), headers, fetch: options.fetch });
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
  }
}

/** Unwraps an openapi-fetch result: the data, or an ApiError carrying the server's code and message. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const body = result.error as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined;
    throw new ApiError(result.response.status, body?.error?.code ?? "http_error", body?.error?.message ?? `HTTP ${result.response.status}`, body?.error?.details);
  }
  return result.data as T;
}
