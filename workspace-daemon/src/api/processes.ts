import { Hono, type Context } from "hono";
import { InvalidRequestError, parseInput } from "../errors.ts";
import { processEventStream, type ProcessManager } from "../processes/index.ts";
import {
  CHAT_ID_HEADER,
  LIMITS,
  ProcessOutputRequest,
  ProcessSignal,
  SignalProcessRequest,
  StartProcessRequest,
  type ListProcessesResponse,
} from "../protocol.ts";
import { jsonBody, type DaemonEnv } from "./context.ts";

/** The chat a request acts for; processes of other chats are invisible to it. */
function chatScope(c: Context<DaemonEnv>): string {
  return c.req.header(CHAT_ID_HEADER) ?? "";
}

export function processRoutes(processes: ProcessManager) {
  return new Hono<DaemonEnv>()
    .post("/", async (c) => {
      const request = parseInput(StartProcessRequest, await jsonBody(c));
      const { process } = await processes.run(chatScope(c), request, c.req.raw.signal);
      return c.json(process.result());
    })
    .post("/stream", async (c) => {
      const request = parseInput(StartProcessRequest, await jsonBody(c));
      const { process, attached } = await processes.start(chatScope(c), request, "background");
      return new Response(processEventStream(process, attached, c.req.raw.signal), {
        headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" },
      });
    })
    .get("/", (c) => {
      const response: ListProcessesResponse = { processes: processes.list(chatScope(c)).map((process) => process.summary()) };
      return c.json(response);
    })
    .get("/:id/output", async (c) => {
      const { wait_ms } = parseInput(ProcessOutputRequest, c.req.query());
      const process = processes.get(chatScope(c), c.req.param("id"));
      await process.waitForExit(Math.min(wait_ms ?? 0, LIMITS.processMaxWaitMs), c.req.raw.signal);
      return c.json(process.result());
    })
    .post("/:id/signal", async (c) => {
      const request = parseInput(SignalProcessRequest, await jsonBody(c));
      const signal = ProcessSignal.safeParse(request.signal);
      if (!signal.success) {
        throw new InvalidRequestError("invalid_signal", `signal must be one of: ${ProcessSignal.options.join(", ")}`, {
          signal: request.signal,
          allowed: ProcessSignal.options,
        });
      }
      const process = await processes.signal(chatScope(c), c.req.param("id"), signal.data);
      return c.json(process.result());
    });
}
