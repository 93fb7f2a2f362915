import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { collect, createProvider, type LlmProvider } from "./index.ts";
import { toolConversation, tools } from "./testing/conversation.ts";
import { startFakeLlm, type FakeLlmServer } from "./testing/fake-llm.ts";

const claude = "anthropic.claude-sonnet-4-5-20250929-v1:0";

describe("bedrock request shape", () => {
  let fake: FakeLlmServer;
  let provider: LlmProvider;

  beforeEach(async () => {
    fake = await startFakeLlm("bedrock");
    provider = createProvider(fake.config);
  });
  afterEach(async () => {
    await fake.close();
  });

  it("sends toolResult blocks leading one user message, signed with SigV4", async () => {
    fake.enqueue({ type: "respond", text: "Two files." });
    await collect(provider.stream({ model: claude, system: "You are Kiln.", messages: toolConversation, tools, maxOutputTokens: 1000 }));
    const [request] = fake.requests;
    expect(decodeURIComponent(request?.path ?? "")).toBe(`/model/${claude}/converse-stream`);
    expect(request?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKEFAKE\/\d{8}\/us-east-1\/bedrock\/aws4_request/);
    expect(request?.body).toEqual({
      system: [{ text: "You are Kiln." }],
      inferenceConfig: { maxTokens: 1000 },
      toolConfig: { tools: tools.map((tool) => ({ toolSpec: { name: tool.name, description: tool.description, inputSchema: { json: tool.inputSchema } } })) },
      messages: [
        { role: "user", content: [{ text: "What is in src?" }] },
        {
          role: "assistant",
          content: [
            { reasoningContent: { reasoningText: { text: "I should list the directory.", signature: "sig-1" } } },
            { text: "Let me look." },
            { toolUse: { toolUseId: "call_1", name: "list_dir", input: { path: "src" } } },
            { toolUse: { toolUseId: "call_2", name: "read_file", input: { path: "src/missing.ts" } } },
          ],
        },
        {
          role: "user",
          content: [
            { toolResult: { toolUseId: "call_1", content: [{ text: "main.ts\nutil.ts" }], status: "success" } },
            { toolResult: { toolUseId: "call_2", content: [{ text: "ENOENT: no such file" }], status: "error" } },
            { text: "Now summarize." },
          ],
        },
      ],
    });
  });

  it("leaves out the toolResult status for models other than Claude", async () => {
    fake.enqueue({ type: "respond", text: "ok" });
    await collect(provider.stream({ model: "amazon.nova-pro-v1:0", messages: toolConversation, tools }));
    expect(fake.requests[0]?.body.messages[2].content[1]).toEqual({ toolResult: { toolUseId: "call_2", content: [{ text: "ENOENT: no such file" }] } });
  });

  it("authenticates with a Bedrock API key as a bearer token", async () => {
    fake.enqueue({ type: "respond", text: "ok" });
    const withApiKey = createProvider({ type: "bedrock", baseUrl: fake.url, region: "us-west-2", apiKey: "bedrock-api-key-123" });
    expect((await collect(withApiKey.stream({ model: claude, messages: toolConversation.slice(0, 1) }))).text).toBe("ok");
    expect(fake.requests[0]?.headers.authorization).toBe("Bearer bedrock-api-key-123");
  });

  it("replays a streamed reasoning block with its signature on the next turn", async () => {
    fake.enqueue(
      { type: "respond", reasoning: "List first.", reasoningSignature: "sig-abc", toolCalls: [{ id: "tooluse_1", name: "list_dir", input: { path: "." } }] },
      { type: "respond", text: "Done." },
    );
    const question = { role: "user" as const, content: [{ type: "text" as const, text: "What is here?" }] };
    const first = await collect(provider.stream({ model: claude, messages: [question], tools }));
    await collect(
      provider.stream({
        model: claude,
        tools,
        messages: [
          question,
          { role: "assistant", content: first.content },
          { role: "tool", content: [{ type: "tool-result", toolCallId: "tooluse_1", toolName: "list_dir", output: "a.txt" }] },
        ],
      }),
    );
    expect(fake.requests[1]?.body.messages.slice(1)).toEqual([
      {
        role: "assistant",
        content: [
          { reasoningContent: { reasoningText: { text: "List first.", signature: "sig-abc" } } },
          { toolUse: { toolUseId: "tooluse_1", name: "list_dir", input: { path: "." } } },
        ],
      },
      { role: "user", content: [{ toolResult: { toolUseId: "tooluse_1", content: [{ text: "a.txt" }], status: "success" } }] },
    ]);
  });
});
