import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { collect, createProvider, type LlmProvider } from "./index.ts";
import { toolConversation, tools } from "./testing/conversation.ts";
import { startFakeLlm, type FakeLlmServer } from "./testing/fake-llm.ts";

describe("anthropic request shape", () => {
  let fake: FakeLlmServer;
  let provider: LlmProvider;

  beforeEach(async () => {
    fake = await startFakeLlm("anthropic");
    provider = createProvider(fake.config);
  });
  afterEach(async () => {
    await fake.close();
  });

  it("sends tool results as tool_result blocks leading one user turn, with cache breakpoints", async () => {
    fake.enqueue({ type: "respond", text: "Two files." });
    await collect(provider.stream({ model: "claude-sonnet-4-5", system: "You are Kiln.", messages: toolConversation, tools }));
    const [request] = fake.requests;
    expect(request?.path).toBe("/v1/messages");
    // SDK 1.x sends the API key as a bearer token, not x-api-key.
    expect(request?.headers.authorization).toBe("Bearer fake-anthropic-key");
    expect(request?.headers["anthropic-version"]).toBeTruthy();
    expect(request?.body).toEqual({
      model: "claude-sonnet-4-5",
      max_tokens: 8192,
      stream: true,
      system: [{ type: "text", text: "You are Kiln.", cache_control: { type: "ephemeral" } }],
      tools: [
        { name: "list_dir", description: "List a directory", input_schema: tools[0]?.inputSchema },
        { name: "read_file", description: "Read a file", input_schema: tools[1]?.inputSchema },
      ],
      messages: [
        { role: "user", content: [{ type: "text", text: "What is in src?" }] },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "I should list the directory.", signature: "sig-1" },
            { type: "text", text: "Let me look." },
            { type: "tool_use", id: "call_1", name: "list_dir", input: { path: "src" } },
            { type: "tool_use", id: "call_2", name: "read_file", input: { path: "src/missing.ts" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "call_1", content: "main.ts\nutil.ts" },
            { type: "tool_result", tool_use_id: "call_2", content: "ENOENT: no such file", is_error: true },
            { type: "text", text: "Now summarize.", cache_control: { type: "ephemeral" } },
          ],
        },
      ],
    });
  });

  it("replays a streamed thinking block with its signature on the next turn", async () => {
    fake.enqueue(
      { type: "respond", reasoning: "List first.", reasoningSignature: "sig-abc", toolCalls: [{ id: "toolu_1", name: "list_dir", input: { path: "." } }] },
      { type: "respond", text: "Done." },
    );
    const question = { role: "user" as const, content: [{ type: "text" as const, text: "What is here?" }] };
    const first = await collect(provider.stream({ model: "claude-sonnet-4-5", messages: [question], tools, maxOutputTokens: 2048 }));
    await collect(
      provider.stream({
        model: "claude-sonnet-4-5",
        tools,
        messages: [
          question,
          { role: "assistant", content: first.content },
          { role: "tool", content: [{ type: "tool-result", toolCallId: "toolu_1", toolName: "list_dir", output: "a.txt" }] },
        ],
      }),
    );
    expect(fake.requests[0]?.body.max_tokens).toBe(2048);
    expect(fake.requests[1]?.body.messages[1]).toEqual({
      role: "assistant",
      content: [
        { type: "thinking", thinking: "List first.", signature: "sig-abc" },
        { type: "tool_use", id: "toolu_1", name: "list_dir", input: { path: "." } },
      ],
    });
  });

  it("drops reasoning that has no signature, which the API would reject", async () => {
    fake.enqueue({ type: "respond", text: "ok" });
    await collect(
      provider.stream({
        model: "claude-sonnet-4-5",
        messages: [
          { role: "user", content: [{ type: "text", text: "hi" }] },
          { role: "assistant", content: [{ type: "reasoning", text: "from another provider" }, { type: "text", text: "hello" }] },
          { role: "user", content: [{ type: "text", text: "again" }] },
        ],
      }),
    );
    expect(fake.requests[0]?.body.messages[1]).toEqual({ role: "assistant", content: [{ type: "text", text: "hello" }] });
  });
});
