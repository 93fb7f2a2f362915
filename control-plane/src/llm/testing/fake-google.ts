import { randomBytes } from "node:crypto";
import { defaultSignature, pathname, searchParams, splitText, textChunks, turnUsage, type FakeProtocol } from "./fake-server.ts";

const streamPath = /^\/v1beta\/models\/([^/:]+):streamGenerateContent$/;

interface GooglePart {
  text?: string;
  thought?: boolean;
  thoughtSignature?: string;
  functionCall?: { id?: string; name: string; args: unknown };
}

/** Gemini API: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`, SSE of GenerateContentResponse JSON. */
export const googleProtocol: FakeProtocol = {
  transport: "http1",

  matches: (request) => request.method === "POST" && streamPath.test(pathname(request.path)) && searchParams(request.path).get("alt") === "sse",

  stream(turn, request) {
    const usage = turnUsage(turn);
    const model = decodeURIComponent(streamPath.exec(pathname(request.path))?.[1] ?? "gemini-fake");
    const responseId = randomBytes(10).toString("base64url");
    const promptTokenCount = usage.inputTokens + usage.cacheReadTokens;
    const usageMetadata = {
      promptTokenCount,
      candidatesTokenCount: usage.outputTokens - usage.reasoningTokens,
      totalTokenCount: promptTokenCount + usage.outputTokens,
      ...(usage.cacheReadTokens ? { cachedContentTokenCount: usage.cacheReadTokens } : {}),
      ...(usage.reasoningTokens ? { thoughtsTokenCount: usage.reasoningTokens } : {}),
      promptTokensDetails: [{ modality: "TEXT", tokenCount: promptTokenCount }],
    };

    const chunkParts: GooglePart[][] = [];
    if (turn.reasoning !== undefined) {
      for (const piece of splitText(turn.reasoning, 3)) chunkParts.push([{ text: piece, thought: true }]);
    }
    for (const piece of textChunks(turn)) chunkParts.push([{ text: piece }]);
    // Gemini sends each function call whole, all calls of a turn in one chunk.
    const calls = (turn.toolCalls ?? []).map((call): GooglePart => ({ functionCall: { ...(call.id ? { id: call.id } : {}), name: call.name, args: call.input } }));
    if (calls.length) chunkParts.push(calls);
    if (chunkParts.length === 0) chunkParts.push([{ text: "" }]);
    if (turn.reasoning !== undefined) {
      // With thinking on, the signature rides on the first function call, or else on the last part.
      const target = calls[0] ?? chunkParts.at(-1)?.at(-1);
      if (target) target.thoughtSignature = defaultSignature(turn);
    }

    const headers = { "content-type": "text/event-stream", "x-content-type-options": "nosniff" };
    if (turn.streamError) {
      const { status, message = `fake LLM: scripted ${status} stream error` } = turn.streamError;
      const frames = chunkParts.map((parts) => `data: ${JSON.stringify({ candidates: [{ content: { parts, role: "model" }, index: 0 }], modelVersion: model, responseId })}\r\n\r\n`);
      frames.push(`data: ${JSON.stringify({ error: { code: status, message, status: statusName(status) } })}\r\n\r\n`);
      return { headers, frames };
    }
    const finishReason = turn.stopReason === "length" ? "MAX_TOKENS" : "STOP";
    const chunks = chunkParts.map((parts, index) => {
      const last = index === chunkParts.length - 1;
      return {
        candidates: [{ content: { parts, role: "model" }, ...(last ? { finishReason } : {}), index: 0 }],
        usageMetadata: last ? usageMetadata : { promptTokenCount, totalTokenCount: promptTokenCount, promptTokensDetails: usageMetadata.promptTokensDetails },
        modelVersion: model,
        responseId,
      };
    });
    return { headers, frames: chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\r\n\r\n`) };
  },

  error(status, message) {
    return {
      headers: { "content-type": "application/json; charset=UTF-8" },
      body: JSON.stringify({ error: { code: status, message, status: statusName(status) } }),
    };
  },
};

function statusName(status: number): string {
  switch (status) {
    case 400:
      return "INVALID_ARGUMENT";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "NOT_FOUND";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 503:
      return "UNAVAILABLE";
    case 504:
      return "DEADLINE_EXCEEDED";
    default:
      return "INTERNAL";
  }
}
