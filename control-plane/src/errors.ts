/** Errors that carry their meaning: a code, an HTTP status and structured details. */
export class KilnError extends Error {
  override readonly name: string = "KilnError";
  constructor(
    readonly code: string,
    message: string,
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 422 | 429 | 500 | 502 | 503 | 504,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export class ValidationError extends KilnError {
  override readonly name = "ValidationError";
  constructor(message: string, details?: Record<string, unknown>) {
    super("invalid_request", message, 400, details);
  }
}

export class NotFoundError extends KilnError {
  override readonly name = "NotFoundError";
  constructor(what: string, details?: Record<string, unknown>) {
    super("not_found", `${what} not found`, 404, details);
  }
}

export class ConflictError extends KilnError {
  override readonly name = "ConflictError";
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, 409, details);
  }
}

export class UnauthorizedError extends KilnError {
  override readonly name = "UnauthorizedError";
  constructor(message = "authentication required") {
    super("unauthorized", message, 401);
  }
}

export class ForbiddenError extends KilnError {
  override readonly name = "ForbiddenError";
  constructor(message = "you do not have permission to do this") {
    super("forbidden", message, 403);
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}
