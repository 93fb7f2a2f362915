import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { collect, createProvider, type LlmProvider } from "./index.ts";
import { toolConversation, tools } from "./testing/conversation.ts";
import { startFakeLlm, type FakeLlmServer } from "./testing/fake-llm.ts";

describe("google request shape", () => {
  let fake: FakeLlmServer;
  let provider: LlmProvider;

  beforeEach(async () => {
    fake = await startFakeLlm("google");
    provider = createProvider(fake.config);
  });
  afterEach(async () => {
    await fake.close();
  });

  it("sends function responses as parts of one user turn and declares tools as JSON Schema", async () => {
    fake.enqueue({ type: "respond", text: "Two files." });
    await collect(provider.stream({ model: "gemini-2.5-pro", system: "You are Kiln.", messages: toolConversation, tools, maxOutputTokens: 1000 }));
    const [request] = fake.requests;
    expect(request?.path).toBe("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse");
    expect(request?.headers["x-goog-api-key"]).toBe("fake-google-key");
    expect(request?.body.systemInstruction).toMatchObject({ parts: [{ text: "You are Kiln." }] });
    expect(request?.body.generationConfig).toEqual({ maxOutputTokens: 1000 });
    expect(request?.body.tools).toEqual([
      { functionDeclarations: tools.map((tool) => ({ name: tool.name, description: tool.description, parametersJsonSchema: tool.inputSchema })) },
    ]);
    expect(request?.body.contents).toEqual([
      { role: "user", parts: [{ text: "What is in src?" }] },
      {
        role: "model",
        parts: [
          { text: "Let me look.", thoughtSignature: "sig-1" },
          { functionCall: { name: "list_dir", args: { path: "src" } } },
          { functionCall: { name: "read_file", args: { path: "src/missing.ts" } } },
        ],
      },
      {
        role: "user",
        parts: [
          { functionResponse: { name: "list_dir", response: { output: "main.ts\nutil.ts" } } },
          { functionResponse: { name: "read_file", response: { error: "ENOENT: no such file" } } },
          { text: "Now summarize." },
        ],
      },
    ]);
  });

  it("puts a streamed thought signature back on the function call it came with", async () => {
    fake.enqueue(
      { type: "respond", reasoning: "Need the listing.", reasoningSignature: "thought-sig", text: "Checking.", toolCalls: [{ name: "list_dir", input: { path: "." } }] },
      { type: "respond", text: "Done." },
    );
    const question = { role: "user" as const, content: [{ type: "text" as const, text: "What is here?" }] };
    const first = await collect(provider.stream({ model: "gemini-2.5-pro", messages: [question], tools }));
    const callId = first.toolCalls[0]?.toolCallId ?? "";
    expect(first.finish.reason).toBe("tool-calls");
    await collect(
      provider.stream({
        model: "gemini-2.5-pro",
        tools,
        messages: [
          question,
          { role: "assistant", content: first.content },
          { role: "tool", content: [{ type: "tool-result", toolCallId: callId, toolName: "list_dir", output: "a.txt" }] },
        ],
      }),
    );
    expect(fake.requests[1]?.body.contents.slice(1)).toEqual([
      { role: "model", parts: [{ text: "Checking." }, { functionCall: { name: "list_dir", args: { path: "." } }, thoughtSignature: "thought-sig" }] },
      { role: "user", parts: [{ functionResponse: { name: "list_dir", response: { output: "a.txt" } } }] },
    ]);
  });
});
