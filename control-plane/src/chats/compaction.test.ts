import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";

describe("compaction", () => {
  let h: ChatHarness;
  beforeAll(async () => {
    // A tiny context window: 50 % of 2000 tokens triggers compaction.
    h = await startChatHarness({ contextWindow: 2000, compactionThreshold: 50 });
    await h.workspace("dev");
  });
  afterAll(async () => h?.close());

  it("summarizes older history once the threshold is crossed; originals stay visible but leave the model's context", async () => {
    h.fake.enqueue(
      { type: "respond", text: "the original first answer", usage: { inputTokens: 300, outputTokens: 20 } },
      { type: "respond", toolCalls: [{ id: "call_1", name: "execute", input: { command: "echo step" } }], usage: { inputTokens: 1200, outputTokens: 20 } },
      { type: "respond", text: "GOAL: echo things. DONE: echoed step. NEXT: finish.", usage: { inputTokens: 650, outputTokens: 30 } },
      { type: "respond", text: "finished after compaction", usage: { inputTokens: 80, outputTokens: 5 } },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "the very first prompt", workspace: "dev" });
    await h.waitForStatus(created.body.id, ["waiting"]);
    await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "now run a step" });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && h.fake.requests.length < 4) await new Promise((resolve) => setTimeout(resolve, 50));
    await h.waitForStatus(created.body.id, ["waiting"]);

    const summaryRequest = JSON.stringify(h.fake.requests[2]!.body);
    expect(summaryRequest).toContain("Summarize the conversation so far");
    expect(summaryRequest).toContain("the very first prompt");
    const after = JSON.stringify(h.fake.requests[3]!.body.messages);
    expect(after).toContain("Summary of the conversation so far");
    expect(after).toContain("GOAL: echo things");
    expect(after).not.toContain("the very first prompt");
    expect(after).not.toContain("the original first answer");

    const messages = await h.messages(created.body.id);
    expect(messages.map((message: { parts: { text?: string }[] }) => message.parts[0]?.text)).toContain("the original first answer");
    const summaries = messages.filter((message: { compressed: boolean }) => message.compressed);
    expect(summaries).toHaveLength(1);
    expect(messages.at(-1).parts[0].text).toBe("finished after compaction");
  });

  it("compacts on demand, and does not summarize a summary again", async () => {
    h.fake.enqueue(
      { type: "respond", text: "one", usage: { inputTokens: 10, outputTokens: 1 } },
      { type: "respond", text: "two", usage: { inputTokens: 10, outputTokens: 1 } },
      { type: "respond", text: "manual summary" },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "first" });
    await h.waitForStatus(created.body.id, ["waiting"]);
    await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "second" });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await h.messages(created.body.id)).length < 4) await new Promise((resolve) => setTimeout(resolve, 50));
    await h.waitForStatus(created.body.id, ["waiting"]);
    const before = h.fake.requests.length;
    expect((await h.call("POST", `/api/v1/chats/${created.body.id}/compact`)).body).toEqual({ compacted: true });
    expect((await h.call("POST", `/api/v1/chats/${created.body.id}/compact`)).body).toEqual({ compacted: false });
    expect(h.fake.requests.length).toBe(before + 1);
    const messages = await h.messages(created.body.id);
    expect(messages.at(-1)).toMatchObject({ compressed: true });
  });
});
