import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";

/** The embedded default: the worker's statements (prepared, NOTIFY in RETURNING, CTEs) run on PGlite too. */
describe("agent chat loop on PGlite", () => {
  let h: ChatHarness;
  const texts = async (chatId: string) =>
    ((await h.messages(chatId)) as { role: string; parts: { type: string; text?: string; toolName?: string }[] }[])
      .map((message) => `${message.role}: ${message.parts.map((part) => part.text ?? part.toolName ?? part.type).join("")}`);

  beforeAll(async () => {
    h = await startChatHarness({ embedded: true });
    expect(h.server.database.kind).toBe("pglite");
  });
  afterAll(async () => {
    await h?.close();
  });

  it("answers, runs a tool call, and delivers a message queued during the turn", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_templates", name: "list_templates", input: {} }] },
      { type: "respond", text: ["no ", "templates"], delayMs: 200, usage: { inputTokens: 10, outputTokens: 2 } },
      { type: "respond", text: "answer to A" },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "what templates are there?" });
    expect(created.status).toBe(201);
    await h.waitForStatus(created.body.id, ["running"]);
    expect((await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "A" })).body.queued).toBe(true);
    const deadline = Date.now() + 30_000;
    let seen: string[] = [];
    while (Date.now() < deadline) {
      seen = await texts(created.body.id);
      if (seen.length >= 6) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await h.waitForStatus(created.body.id, ["waiting"]);
    expect(await texts(created.body.id)).toEqual([
      "user: what templates are there?", "assistant: list_templates", "tool: list_templates", "assistant: no templates", "user: A", "assistant: answer to A",
    ]);
    const messages = await h.messages(created.body.id);
    expect(messages[3].usage).toMatchObject({ inputTokens: 10, outputTokens: 2 });
    expect(messages[1].usage).not.toBeNull();
  });
});
