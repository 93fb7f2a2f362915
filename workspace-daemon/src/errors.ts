import type { ErrorCode, ValidationIssue } from "./protocol.ts";
import type { z } from "zod";

export type ErrorDetails = Record<string, unknown>;

/** An error the client caused or can act on; the app's error handler turns it into `{ error }`. */
export abstract class DaemonError extends Error {
  abstract readonly status: 400 | 404 | 403 | 409 | 413;
  readonly code: ErrorCode;
  details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export class InvalidRequestError extends DaemonError {
  override readonly name = "InvalidRequestError";
  readonly status = 400;
}

export class NotFoundError extends DaemonError {
  override readonly name = "NotFoundError";
  readonly status = 404;
}

export class PermissionDeniedError extends DaemonError {
  override readonly name = "PermissionDeniedError";
  readonly status = 403;
}

export class ConflictError extends DaemonError {
  override readonly name = "ConflictError";
  readonly status = 409;
}

export class PayloadTooLargeError extends DaemonError {
  override readonly name = "PayloadTooLargeError";
  readonly status = 413;
}

export function validationIssues(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
}

/** Parses untrusted input, throwing `invalid_request` that names each bad field. */
export function parseInput<Schema extends z.ZodType>(schema: Schema, input: unknown): z.infer<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = validationIssues(result.error);
  const summary = issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message)).join("; ");
  throw new InvalidRequestError("invalid_request", `invalid request: ${summary}`, { issues });
}

/** Maps the filesystem errors a caller can act on; anything else stays unknown (500). */
export function fileSystemError(error: unknown, path: string): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return new NotFoundError("not_found", `no such file or directory: ${path}`, { path });
    case "EISDIR":
      return new InvalidRequestError("is_directory", `path is a directory: ${path}`, { path });
    case "ENOTDIR":
      return new InvalidRequestError("not_directory", `a component of the path is not a directory: ${path}`, { path });
    case "EACCES":
    case "EPERM":
      return new PermissionDeniedError("permission_denied", `permission denied: ${path}`, { path });
    default:
      return error;
  }
}
