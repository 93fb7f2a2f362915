import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { collect, createProvider, LlmError, type LlmEvent, type LlmProvider, type ProviderType } from "./index.ts";
import { startFakeLlm, type FakeLlmServer } from "./testing/fake-llm.ts";

/** What each provider's wire format can express, so one suite covers all six. */
const providers: {
  type: ProviderType;
  model: string;
  /** The provider sends an opaque signature with reasoning. */
  reasoningSignature: boolean;
  /** The provider reports cache writes / reasoning tokens. */
  cacheWriteTokens: boolean;
  reasoningTokens: boolean;
  /** The provider gives tool calls ids of its own. */
  toolCallIds: boolean;
}[] = [
  { type: "anthropic", model: "claude-sonnet-4-5", reasoningSignature: true, cacheWriteTokens: true, reasoningTokens: true, toolCallIds: true },
  { type: "openai", model: "gpt-5", reasoningSignature: false, cacheWriteTokens: false, reasoningTokens: true, toolCallIds: true },
  { type: "azure-openai", model: "gpt-5", reasoningSignature: false, cacheWriteTokens: false, reasoningTokens: true, toolCallIds: true },
  { type: "openai-compatible", model: "qwen3-coder", reasoningSignature: false, cacheWriteTokens: false, reasoningTokens: true, toolCallIds: true },
  { type: "google", model: "gemini-2.5-pro", reasoningSignature: true, cacheWriteTokens: false, reasoningTokens: true, toolCallIds: false },
  { type: "bedrock", model: "anthropic.claude-sonnet-4-5-20250929-v1:0", reasoningSignature: true, cacheWriteTokens: true, reasoningTokens: false, toolCallIds: true },
];

describe.each(providers)("$type through its official SDK", (testCase) => {
  let fake: FakeLlmServer;
  let provider: LlmProvider;

  beforeEach(async () => {
    fake = await startFakeLlm(testCase.type);
    provider = createProvider(fake.config);
  });
  afterEach(async () => {
    await fake.close();
  });

  const ask = (signal?: AbortSignal) =>
    provider.stream({ model: testCase.model, system: "You are terse.", messages: [{ role: "user", content: [{ type: "text", text: "Say hello" }] }], signal });

  it("streams text deltas in order and finishes with stop", async () => {
    fake.enqueue({ type: "respond", text: ["Hel", "lo, ", "wor", "ld!"] });
    const events: LlmEvent[] = [];
    const response = await collect(ask(), (event) => void events.push(event));
    expect(events.filter((event) => event.type === "text-delta").map((event) => event.text)).toEqual(["Hel", "lo, ", "wor", "ld!"]);
    expect(events.at(-1)?.type).toBe("finish");
    expect(response.text).toBe("Hello, world!");
    expect(response.finish.reason).toBe("stop");
    expect(response.content).toEqual([{ type: "text", text: "Hello, world!" }]);
    expect(fake.requests).toHaveLength(1);
  });

  it("assembles a tool call whose JSON arguments arrive in pieces", async () => {
    const input = { path: "src/main.ts", lines: [1, 20], options: { follow: true, note: "ünïcödé \"quoted\"" } };
    fake.enqueue({ type: "respond", text: "Reading it.", toolCalls: [{ id: "call_read_1", name: "read_file", input }, { name: "list_dir", input: { path: "src" } }] });
    const response = await collect(
      provider.stream({
        model: testCase.model,
        messages: [{ role: "user", content: [{ type: "text", text: "Show main.ts" }] }],
        tools: [
          { name: "read_file", description: "Read a file", inputSchema: { type: "object", properties: { path: { type: "string" } }, required: ["path"] } },
          { name: "list_dir", description: "List a directory", inputSchema: { type: "object", properties: { path: { type: "string" } } } },
        ],
      }),
    );
    expect(response.toolCalls.map(({ toolName, input }) => ({ toolName, input }))).toEqual([
      { toolName: "read_file", input },
      { toolName: "list_dir", input: { path: "src" } },
    ]);
    const [first, second] = response.toolCalls;
    expect(first?.toolCallId).toBe("call_read_1");
    // The second call has no scripted id: the provider makes one up, or (Gemini) our adapter does.
    if (testCase.toolCallIds) expect(second?.toolCallId).toBeTruthy();
    else expect(second?.toolCallId).toMatch(/^call_[0-9a-f-]{36}$/);
    expect(second?.toolCallId).not.toBe(first?.toolCallId);
    expect(response.finish.reason).toBe("tool-calls");
    expect(response.content.map((part) => part.type)).toEqual(["text", "tool-call", "tool-call"]);
  });

  it("maps usage tokens", async () => {
    fake.enqueue({ type: "respond", text: "ok", usage: { inputTokens: 120, outputTokens: 45, cacheReadTokens: 30, cacheWriteTokens: 20, reasoningTokens: 15 } });
    const response = await collect(ask());
    expect(response.finish.usage).toEqual({
      inputTokens: 120,
      outputTokens: 45,
      cacheReadTokens: 30,
      cacheWriteTokens: testCase.cacheWriteTokens ? 20 : 0,
      reasoningTokens: testCase.reasoningTokens ? 15 : 0,
    });
  });

  it("streams reasoning ahead of the answer", async () => {
    fake.enqueue({ type: "respond", reasoning: "The user wants a greeting. Keep it short.", reasoningSignature: "sig-123", text: "Hi." });
    const events: LlmEvent[] = [];
    const response = await collect(ask(), (event) => void events.push(event));
    expect(response.reasoning).toBe("The user wants a greeting. Keep it short.");
    expect(events.filter((event) => event.type === "reasoning-delta").length).toBeGreaterThan(1);
    expect(events.findIndex((event) => event.type === "reasoning-delta")).toBeLessThan(events.findIndex((event) => event.type === "text-delta"));
    expect(response.text).toBe("Hi.");
    const signatures = events.filter((event) => event.type === "reasoning-signature");
    expect(signatures).toEqual(testCase.reasoningSignature ? [{ type: "reasoning-signature", signature: "sig-123" }] : []);
  });

  it("reports a stop at the token limit as length", async () => {
    fake.enqueue({ type: "respond", text: "Truncat", stopReason: "length" });
    expect((await collect(ask())).finish.reason).toBe("length");
  });

  it("surfaces 429 as a retryable LlmError without leaking the API key", async () => {
    fake.enqueue({ type: "error", status: 429, message: "Rate limit reached, slow down" });
    const error = await collect(ask()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LlmError);
    const llmError = error as LlmError;
    expect(llmError.options).toMatchObject({ status: 429, retryable: true, provider: testCase.type });
    expect(llmError.message).toContain(testCase.type);
    expect(llmError.message).toContain("429");
    expect(llmError.message).toContain("Rate limit reached, slow down");
    for (const secret of [fake.config.apiKey, fake.config.secretAccessKey]) {
      if (secret) expect(llmError.message).not.toContain(secret);
    }
    expect(fake.requests).toHaveLength(1); // the SDK did not retry on its own
  });

  it("surfaces 401 as a non-retryable LlmError", async () => {
    fake.enqueue({ type: "error", status: 401, message: "invalid credentials" });
    const error = await collect(ask()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LlmError);
    expect((error as LlmError).options).toMatchObject({ status: 401, retryable: false, provider: testCase.type });
    expect((error as LlmError).message).toContain("401");
  });

  it("surfaces an error sent mid-stream as a retryable LlmError after the partial output", async () => {
    fake.enqueue({ type: "respond", text: ["Partial ", "answer"], streamError: { status: 503, message: "The model is overloaded" } });
    const texts: string[] = [];
    const error = await collect(ask(), (event) => void (event.type === "text-delta" && texts.push(event.text))).catch((caught: unknown) => caught);
    expect(texts).toEqual(["Partial ", "answer"]);
    expect(error).toBeInstanceOf(LlmError);
    expect((error as LlmError).options.retryable).toBe(true);
    expect((error as LlmError).options.status).toBeGreaterThanOrEqual(500);
    expect((error as LlmError).message).toContain("The model is overloaded");
  });

  it("treats 5xx as retryable and fails loudly when nothing is scripted", async () => {
    const error = await collect(ask()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LlmError);
    expect((error as LlmError).options).toMatchObject({ status: 500, retryable: true });
    expect((error as LlmError).message).toContain("fake LLM: no scripted turn");
  });

  it("stops the stream when the signal aborts mid-response", async () => {
    fake.enqueue({ type: "respond", text: Array.from({ length: 40 }, (_, index) => `chunk${index} `), delayMs: 25 });
    const controller = new AbortController();
    const texts: string[] = [];
    const started = Date.now();
    const outcome = await (async () => {
      for await (const event of ask(controller.signal)) {
        if (event.type === "text-delta") texts.push(event.text);
        if (texts.length === 2) controller.abort();
      }
    })().catch((caught: unknown) => caught);
    expect(outcome).toMatchObject({ name: "AbortError" });
    expect(texts).toEqual(["chunk0 ", "chunk1 "]);
    expect(Date.now() - started).toBeLessThan(1000);
    await expect.poll(() => fake.requests[0]?.closedEarly).toBe(true);
  });

  it("closes the request when the consumer stops reading early", async () => {
    fake.enqueue({ type: "respond", text: Array.from({ length: 40 }, (_, index) => `chunk${index} `), delayMs: 25 });
    const texts: string[] = [];
    for await (const event of ask()) {
      if (event.type === "text-delta") texts.push(event.text);
      if (texts.length === 2) break;
    }
    expect(texts).toHaveLength(2);
    await expect.poll(() => fake.requests[0]?.closedEarly).toBe(true);
  });

  it("aborts a request the provider has not answered yet", async () => {
    fake.enqueue({ type: "hang" });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const outcome = await collect(ask(controller.signal)).catch((caught: unknown) => caught);
    expect(outcome).toMatchObject({ name: "AbortError" });
    await expect.poll(() => fake.requests[0]?.closedEarly).toBe(true);
  });

  it("throws the abort reason at once for an already aborted signal", async () => {
    const reason = new Error("user pressed stop");
    const outcome = await collect(ask(AbortSignal.abort(reason))).catch((caught: unknown) => caught);
    expect(outcome).toBe(reason);
    expect(fake.requests).toHaveLength(0);
  });

  it("treats an unreachable server as a retryable network error", async () => {
    await fake.close();
    const unreachable = createProvider(fake.config);
    const error = await collect(unreachable.stream({ model: testCase.model, messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }] })).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(LlmError);
    expect((error as LlmError).options).toMatchObject({ retryable: true, provider: testCase.type, status: undefined });
    fake = await startFakeLlm(testCase.type);
  });
});
