import { ApiError, createKilnClient, unwrap, type Schemas } from "../../../src/client/index.ts";

export { ApiError, unwrap };
export type { Schemas };
export type User = Schemas["User"];
export type Chat = Schemas["Chat"];
export type ChatMessage = Schemas["ChatMessage"];
export type QueuedMessage = Schemas["QueuedMessage"];
export type Workspace = Schemas["Workspace"];
export type Template = Schemas["Template"];
export type Model = Schemas["LlmModel"];
export type Provider = Schemas["LlmProvider"];

/** Every request carries the session cookie (same origin) and the header the server demands for cookie-authenticated writes. */
export const CSRF_HEADER = "x-kiln-csrf";

/** Called when the server says the session is gone, so the app can show the sign-in page. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export const api = createKilnClient({ url: window.location.origin });
api.use({
  onRequest({ request }) {
    request.headers.set(CSRF_HEADER, "1");
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && !new URL(request.url).pathname.startsWith("/api/v1/auth/")) onUnauthorized();
    return response;
  },
});

/** A message for people from anything a request threw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    const issues = (error.details?.issues as { field: string; reason: string }[] | undefined) ?? [];
    return issues.length > 0 ? issues.map((issue) => `${issue.field}: ${issue.reason}`).join("; ") : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The field-by-field reasons of a 400, for forms. */
export function fieldErrors(error: unknown): Record<string, string> {
  if (!(error instanceof ApiError)) return {};
  const issues = (error.details?.issues as { field: string; reason: string }[] | undefined) ?? [];
  const fields: Record<string, string> = Object.fromEntries(issues.map((issue) => [issue.field, issue.reason]));
  if (typeof error.details?.field === "string" && typeof error.details.reason === "string") fields[error.details.field] = error.details.reason;
  return fields;
}
