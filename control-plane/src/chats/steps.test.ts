import { and, eq } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chatToolCalls } from "../db/schema.ts";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";
import * as Store from "./store.ts";

/**
 * The SQL a tool step costs. Statements are counted where node-postgres sends them
 * (`Client.prototype.query`, as bench/chat/statements.ts does); no Kiln code is replaced.
 */
describe.skipIf(!inject("postgresUrl"))("agent steps' statements", () => {
  let h: ChatHarness;
  let recording: string[] | null = null;
  const query = pg.Client.prototype.query;

  beforeAll(async () => {
    h = await startChatHarness();
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      if (recording && text) recording.push(text);
      return (query as (...args: unknown[]) => unknown).apply(this, args);
    } as typeof query;
  });
  afterAll(async () => {
    pg.Client.prototype.query = query;
    await h?.close();
  });

  /** Statements that read or write the chat's messages or tool calls (the claim, lease and API polling touch neither). */
  /** The chat's tool and message events, as published in this process. */
  const eventsOf = (chatId: string) => (h.server.chats.api.bus.replay(chatId, 0) ?? [])
    .map(({ event }) => event.type === "message.committed" ? `${event.type} ${event.message.role}` : event.type === "tool.started" || event.type === "tool.finished" ? `${event.type} ${event.tool_call_id}` : null)
    .filter((line): line is string => line !== null && line !== "message.committed user");

  const messageStatements = (texts: string[]) => texts.filter((text) => /"chat_messages"|"chat_tool_calls"/.test(text));

  it("a turn with one tool call stores each row once and reads the context once", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_count", name: "list_templates", input: {} }] },
      { type: "respond", text: "counted" },
    );
    const before = h.fake.requests.length;
    recording = [];
    const created = await h.call("POST", "/api/v1/chats", { prompt: "count the statements" });
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"]);
    const statements = messageStatements(recording);
    recording = null;
    expect(chat.status, chat.last_error).toBe("waiting");
    // The chat and its prompt (one statement), the context at the claim, the reply with the call's
    // `running` record, the call `done` with the tool message, the last reply (which ends the turn).
    // No reload of the context after the worker's own appends, no lookup of records for calls this
    // turn created.
    expect(statements, statements.join("\n\n")).toHaveLength(5);
    expect(statements[2]).toMatch(/^with "reply" as \(insert into "chat_messages".*"records" as \(insert into "chat_tool_calls"/);

    // The second model call still saw the whole conversation, tool result included.
    const second = h.fake.requests[before + 1]!.body.messages as { role: string; content: { type: string; tool_use_id?: string }[] | string }[];
    expect(second.map((message) => message.role)).toEqual(["user", "assistant", "user"]);
    expect(JSON.stringify(second[1])).toContain("call_count");
    expect(JSON.stringify(second[2])).toContain("call_count");
    const messages = await h.messages(created.body.id);
    expect(messages.map((message: { role: string }) => message.role)).toEqual(["user", "assistant", "tool", "assistant"]);
    const [record] = await h.database.db.select().from(chatToolCalls).where(and(eq(chatToolCalls.chatId, created.body.id), eq(chatToolCalls.toolCallId, "call_count")));
    expect(record).toMatchObject({ status: "done", messageId: messages[1].id, result: { output: messages[2].parts[0].output } });
    expect(eventsOf(created.body.id)).toEqual([
      "message.committed assistant", "tool.started call_count", "tool.finished call_count", "message.committed tool", "message.committed assistant",
    ]);
    // The second request went out while the tool message was being stored, but nothing of its
    // reply was published before that message was.
    const raw = (h.server.chats.api.bus.replay(created.body.id, 0) ?? []).map(({ event }) => event.type === "message.committed" ? `committed ${event.message.role}` : event.type);
    expect(raw.indexOf("message.delta")).toBeGreaterThan(raw.indexOf("committed tool"));
  });

  it("parallel calls record and publish each result as it finishes, then store the tool message", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_a", name: "list_templates", input: {} }, { id: "call_b", name: "list_templates", input: {} }] },
      { type: "respond", text: "both" },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "two at once" });
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"]);
    expect(chat.status, chat.last_error).toBe("waiting");
    const events = eventsOf(created.body.id);
    expect(events.slice(0, 1)).toEqual(["message.committed assistant"]);
    expect(events.slice(1, 5).sort()).toEqual(["tool.finished call_a", "tool.finished call_b", "tool.started call_a", "tool.started call_b"]);
    expect(events.slice(5)).toEqual(["message.committed tool", "message.committed assistant"]);
    const records = await h.database.db.select().from(chatToolCalls).where(eq(chatToolCalls.chatId, created.body.id));
    expect(records.map((record) => `${record.toolCallId} ${record.status}`).sort()).toEqual(["call_a done", "call_b done"]);
    const messages = await h.messages(created.body.id);
    expect(messages[2].parts.map((part: { toolCallId: string }) => part.toolCallId)).toEqual(["call_a", "call_b"]);
  });

  it("a call id the model repeats, in a later step or twice in one reply, runs again with a result of its own", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_again", name: "list_templates", input: {} }] },
      { type: "respond", toolCalls: [{ id: "call_again", name: "unknown_tool", input: {} }] },
      { type: "respond", toolCalls: [{ id: "call_twin", name: "list_templates", input: {} }, { id: "call_twin", name: "unknown_tool", input: {} }] },
      { type: "respond", text: "repeated" },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "repeat yourself" });
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"]);
    expect(chat.status, chat.last_error).toBe("waiting");
    const messages = await h.messages(created.body.id);
    expect(messages.map((message: { role: string }) => message.role)).toEqual(["user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant"]);
    expect(messages[2].parts[0]).toMatchObject({ toolCallId: "call_again", toolName: "list_templates" });
    expect(messages[2].parts[0].isError).toBeUndefined();
    expect(messages[4].parts[0]).toMatchObject({ toolCallId: "call_again", toolName: "unknown_tool", isError: true });
    expect(messages[6].parts.map((part: { toolName: string }) => part.toolName)).toEqual(["list_templates", "unknown_tool"]);
    // The record holds the latest use of the id, finished.
    const records = await h.database.db.select().from(chatToolCalls).where(eq(chatToolCalls.chatId, created.body.id));
    expect(records.map((record) => `${record.toolCallId} ${record.status} ${record.messageId}`).sort()).toEqual([`call_again done ${messages[3].id}`, `call_twin done ${messages[5].id}`]);
  });

  it("a resumed turn uses the stored result of a call that already finished, and looks the records up", async () => {
    h.fake.enqueue({ type: "respond", text: "first answer" });
    const created = await h.call("POST", "/api/v1/chats", { prompt: "start" });
    await h.waitForStatus(created.body.id, ["waiting"]);
    // The state a server leaves when it dies after a call finished but before its tool message was stored.
    const db = h.database.db;
    const reply = await Store.appendMessage(db, { chatId: created.body.id, role: "assistant", parts: [{ type: "tool-call", toolCallId: "call_stored", toolName: "list_templates", input: {} }] });
    await Store.upsertToolCall(db, { chatId: created.body.id, toolCallId: "call_stored", messageId: reply.id, toolName: "list_templates", input: {}, status: "done", result: { output: "the stored result" } });
    h.fake.enqueue({ type: "respond", text: "resumed" });
    const before = h.fake.requests.length;
    recording = [];
    await Store.setStatus(db, created.body.id, "pending");
    await h.database.notify(Store.CHATS_CHANNEL, created.body.id);
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"]);
    const statements = messageStatements(recording);
    recording = null;
    expect(chat.status, chat.last_error).toBe("waiting");
    expect(statements.filter((text) => /^select .* from "chat_tool_calls"/i.test(text)), statements.join("\n\n")).toHaveLength(1);

    const messages = await h.messages(created.body.id);
    expect(messages.map((message: { role: string }) => message.role)).toEqual(["user", "assistant", "assistant", "tool", "assistant"]);
    expect(messages[3].parts).toEqual([{ type: "tool-result", toolCallId: "call_stored", toolName: "list_templates", output: "the stored result" }]);
    expect(messages[4].parts).toEqual([{ type: "text", text: "resumed" }]);
    expect(h.fake.requests).toHaveLength(before + 1);
    expect(JSON.stringify(h.fake.requests[before]!.body.messages)).toContain("the stored result");
  });
});
