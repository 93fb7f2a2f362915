import { randomBytes, randomUUID } from "node:crypto";
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { defaultSignature, pathname, splitText, textChunks, turnUsage, type FakeProtocol } from "./fake-server.ts";

const streamPath = /^\/model\/([^/]+)\/converse-stream$/;

const codec = new EventStreamCodec(
  (bytes) => new TextDecoder().decode(bytes),
  (text) => new TextEncoder().encode(text),
);

/** Bedrock ConverseStream: `POST /model/{modelId}/converse-stream` answered with `application/vnd.amazon.eventstream` frames. */
export const bedrockProtocol: FakeProtocol = {
  transport: "http2",

  matches: (request) => request.method === "POST" && streamPath.test(pathname(request.path)),

  stream(turn) {
    const usage = turnUsage(turn);
    const events: [string, Record<string, unknown>][] = [];
    events.push(["messageStart", { role: "assistant" }]);
    let index = 0;
    if (turn.reasoning !== undefined) {
      for (const piece of splitText(turn.reasoning, 3)) {
        events.push(["contentBlockDelta", { contentBlockIndex: index, delta: { reasoningContent: { text: piece } } }]);
      }
      events.push(["contentBlockDelta", { contentBlockIndex: index, delta: { reasoningContent: { signature: defaultSignature(turn) } } }]);
      events.push(["contentBlockStop", { contentBlockIndex: index }]);
      index++;
    }
    const text = textChunks(turn);
    if (text.length) {
      // Text blocks have no contentBlockStart; only tool use does.
      for (const piece of text) events.push(["contentBlockDelta", { contentBlockIndex: index, delta: { text: piece } }]);
      events.push(["contentBlockStop", { contentBlockIndex: index }]);
      index++;
    }
    for (const call of turn.toolCalls ?? []) {
      const toolUseId = call.id ?? `tooluse_${randomBytes(16).toString("base64url")}`;
      events.push(["contentBlockStart", { contentBlockIndex: index, start: { toolUse: { toolUseId, name: call.name } } }]);
      for (const piece of splitText(JSON.stringify(call.input), 3)) {
        events.push(["contentBlockDelta", { contentBlockIndex: index, delta: { toolUse: { input: piece } } }]);
      }
      events.push(["contentBlockStop", { contentBlockIndex: index }]);
      index++;
    }
    const headers = { "content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": randomUUID() };
    if (turn.streamError) {
      const { status, message = `fake LLM: scripted ${status} stream error` } = turn.streamError;
      const frames = events.map(([eventType, payload]) => encodeEvent(eventType, payload));
      frames.push(encodeException(streamExceptionName(status), message));
      return { headers, frames };
    }
    const stopReason = turn.toolCalls?.length ? "tool_use" : turn.stopReason === "length" ? "max_tokens" : "end_turn";
    events.push(["messageStop", { stopReason }]);
    events.push([
      "metadata",
      {
        usage: {
          inputTokens: usage.inputTokens,
          outputTokens: usage.outputTokens,
          totalTokens: usage.inputTokens + usage.outputTokens + usage.cacheReadTokens + usage.cacheWriteTokens,
          ...(usage.cacheReadTokens ? { cacheReadInputTokens: usage.cacheReadTokens } : {}),
          ...(usage.cacheWriteTokens ? { cacheWriteInputTokens: usage.cacheWriteTokens } : {}),
        },
        metrics: { latencyMs: 42 },
      },
    ]);
    return { headers, frames: events.map(([eventType, payload]) => encodeEvent(eventType, payload)) };
  },

  error(status, message) {
    return {
      headers: {
        "content-type": "application/json",
        "x-amzn-requestid": randomUUID(),
        "x-amzn-errortype": `${exceptionName(status)}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      },
      body: JSON.stringify({ message }),
    };
  },
};

function encodeEvent(eventType: string, payload: Record<string, unknown>): Uint8Array {
  // The service pads each payload with a random-length "p" field so sizes do not leak content.
  const body = { ...payload, p: "abcdefghijklmnopqrstuvwxyz".slice(0, 1 + (payload.contentBlockIndex === undefined ? 3 : 7)) };
  return codec.encode({
    headers: {
      ":event-type": { type: "string", value: eventType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: "event" },
    },
    body: new TextEncoder().encode(JSON.stringify(body)),
  });
}

/** An error after the response started: a frame of message type "exception" named after the stream's union member. */
function encodeException(exceptionType: string, message: string): Uint8Array {
  return codec.encode({
    headers: {
      ":exception-type": { type: "string", value: exceptionType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: "exception" },
    },
    body: new TextEncoder().encode(JSON.stringify({ message })),
  });
}

function streamExceptionName(status: number): string {
  switch (status) {
    case 400:
      return "validationException";
    case 429:
      return "throttlingException";
    case 503:
      return "serviceUnavailableException";
    case 500:
      return "internalServerException";
    default:
      return "modelStreamErrorException";
  }
}

function exceptionName(status: number): string {
  switch (status) {
    case 400:
      return "ValidationException";
    case 401:
      return "UnrecognizedClientException";
    case 403:
      return "AccessDeniedException";
    case 404:
      return "ResourceNotFoundException";
    case 408:
      return "ModelTimeoutException";
    case 424:
      return "ModelErrorException";
    case 429:
      return "ThrottlingException";
    case 503:
      return "ServiceUnavailableException";
    default:
      return "InternalServerException";
  }
}
