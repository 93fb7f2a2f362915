import type { Context } from "hono";
import type { Logger } from "pino";
import { InvalidRequestError } from "../errors.ts";

export interface DaemonEnv {
  Variables: {
    requestId: string;
    log: Logger;
  };
}

/** The request body as JSON; a body that does not parse is the client's error. */
export async function jsonBody(c: Context<DaemonEnv>): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new InvalidRequestError("invalid_request", "request body must be JSON", { issues: [{ path: "", message: "body is not valid JSON" }] });
  }
}
