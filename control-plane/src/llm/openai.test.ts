import { afterEach, describe, expect, it } from "vitest";
import { collect, createProvider } from "./index.ts";
import { toolConversation, tools } from "./testing/conversation.ts";
import { startFakeLlm, type FakeLlmServer } from "./testing/fake-llm.ts";

const expectedMessages = [
  { role: "system", content: "You are Kiln." },
  { role: "user", content: "What is in src?" },
  {
    role: "assistant",
    content: "Let me look.",
    tool_calls: [
      { id: "call_1", type: "function", function: { name: "list_dir", arguments: '{"path":"src"}' } },
      { id: "call_2", type: "function", function: { name: "read_file", arguments: '{"path":"src/missing.ts"}' } },
    ],
  },
  { role: "tool", tool_call_id: "call_1", content: "main.ts\nutil.ts" },
  { role: "tool", tool_call_id: "call_2", content: "ENOENT: no such file" },
  { role: "user", content: "Now summarize." },
];

const expectedTools = tools.map((tool) => ({ type: "function", function: { name: tool.name, description: tool.description, parameters: tool.inputSchema } }));

describe("openai-family request shape", () => {
  let fake: FakeLlmServer | undefined;
  afterEach(async () => {
    await fake?.close();
  });

  it("openai: one tool message per result, usage requested, max_completion_tokens, bearer key", async () => {
    fake = await startFakeLlm("openai");
    fake.enqueue({ type: "respond", text: "Two files." });
    await collect(createProvider(fake.config).stream({ model: "gpt-5", system: "You are Kiln.", messages: toolConversation, tools, maxOutputTokens: 1000 }));
    const [request] = fake.requests;
    expect(request?.path).toBe("/v1/chat/completions");
    expect(request?.headers.authorization).toBe("Bearer fake-openai-key");
    expect(request?.body).toEqual({
      model: "gpt-5",
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 1000,
      tools: expectedTools,
      messages: expectedMessages,
    });
  });

  it("azure-openai: deployment route with api-version and api-key header", async () => {
    fake = await startFakeLlm("azure-openai", { deployment: "kiln-gpt", apiVersion: "2025-01-01-preview" });
    fake.enqueue({ type: "respond", text: "Two files." });
    const response = await collect(createProvider(fake.config).stream({ model: "gpt-5", system: "You are Kiln.", messages: toolConversation, tools }));
    expect(response.text).toBe("Two files.");
    const [request] = fake.requests;
    expect(request?.path).toBe("/openai/deployments/kiln-gpt/chat/completions?api-version=2025-01-01-preview");
    expect(request?.headers["api-key"]).toBe("fake-azure-key");
    expect(request?.headers.authorization).toBeUndefined();
    expect(request?.body.messages).toEqual(expectedMessages);
  });

  it("azure-openai: accepts an endpoint that already ends in /openai", async () => {
    fake = await startFakeLlm("azure-openai");
    fake.enqueue({ type: "respond", text: "ok" });
    const provider = createProvider({ ...fake.config, baseUrl: `${fake.url}/openai/` });
    expect((await collect(provider.stream({ model: "gpt-5", messages: toolConversation.slice(0, 1) }))).text).toBe("ok");
    expect(fake.requests[0]?.path).toBe("/openai/deployments/fake-deployment/chat/completions?api-version=2024-10-21");
  });

  it("openai-compatible: max_tokens, and no Authorization header when no key is configured", async () => {
    fake = await startFakeLlm("openai-compatible");
    fake.enqueue({ type: "respond", text: "ok" });
    const provider = createProvider({ type: "openai-compatible", baseUrl: fake.url });
    await collect(provider.stream({ model: "qwen3-coder", messages: toolConversation, maxOutputTokens: 500 }));
    const [request] = fake.requests;
    expect(request?.headers.authorization).toBeUndefined();
    expect(request?.body.max_tokens).toBe(500);
    expect(request?.body.max_completion_tokens).toBeUndefined();
  });

  it("openai-compatible: reads reasoning from the `reasoning` delta field too", async () => {
    fake = await startFakeLlm("openai-compatible", { reasoningField: "reasoning" });
    fake.enqueue({ type: "respond", reasoning: "Thinking it over.", text: "Answer." });
    const response = await collect(createProvider(fake.config).stream({ model: "gpt-oss-120b", messages: toolConversation.slice(0, 1) }));
    expect(response.reasoning).toBe("Thinking it over.");
    expect(response.content).toEqual([
      { type: "reasoning", text: "Thinking it over." },
      { type: "text", text: "Answer." },
    ]);
  });

  it("rejects configs the SDK cannot work with as non-retryable LlmErrors", () => {
    expect(() => createProvider({ type: "openai-compatible" })).toThrow(/openai-compatible request failed: invalid provider config: baseUrl is required/);
    expect(() => createProvider({ type: "azure-openai", apiKey: "k", baseUrl: "https://x.openai.azure.com" })).toThrow(/OPENAI_API_VERSION|apiVersion/);
  });
});
