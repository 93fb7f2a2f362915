import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServerConfig } from "../config.ts";
import { startFakeLlm, type FakeLlmServer } from "../llm/testing/fake-llm.ts";
import { createLogger } from "../logger.ts";
import { startServer, type RunningServer } from "../server/server.ts";
import { temporaryDirectory } from "../testing/kiln-process.ts";

/** The embedded default: the worker's statements (prepared, NOTIFY in RETURNING, CTEs) run on PGlite too. */
describe("agent chat loop on PGlite", () => {
  let server: RunningServer;
  let fake: FakeLlmServer;
  let dataDir: { path: string; remove(): void };
  let token = "";

  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const waitForStatus = async (chatId: string, statuses: string[]) => {
    const deadline = Date.now() + 30_000;
    let chat: { status: string; last_error: string | null } | null = null;
    while (Date.now() < deadline) {
      chat = (await call("GET", `/api/v1/chats/${chatId}`)).body.chat;
      if (chat && statuses.includes(chat.status)) return chat;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`chat ${chatId} is ${chat?.status} (${chat?.last_error ?? ""}), not ${statuses.join("/")}`);
  };
  const texts = async (chatId: string) =>
    ((await call("GET", `/api/v1/chats/${chatId}/messages`)).body.messages as { role: string; parts: { type: string; text?: string; toolName?: string }[] }[])
      .map((message) => `${message.role}: ${message.parts.map((part) => part.text ?? part.toolName ?? part.type).join("")}`);

  beforeAll(async () => {
    fake = await startFakeLlm("anthropic");
    dataDir = temporaryDirectory("kiln-chat-pglite-");
    server = await startServer(parseServerConfig({ dataDir: dataDir.path, listen: "127.0.0.1:0", logLevel: "silent" }), createLogger({ level: "silent" }));
    expect(server.database.kind).toBe("pglite");
    token = (await call("POST", "/api/v1/users/first", { email: "owner@example.com", username: "owner", password: "password-123" })).body.token;
    const provider = await call("POST", "/api/v1/admin/providers", { name: "fake", type: "anthropic", base_url: fake.config.baseUrl, api_key: fake.config.apiKey });
    expect((await call("POST", "/api/v1/admin/models", { provider_id: provider.body.id, model: "fake-model", is_default: true })).status).toBe(201);
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
    dataDir?.remove();
  });

  it("answers, runs a tool call, and delivers a message queued during the turn", async () => {
    fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_templates", name: "list_templates", input: {} }] },
      { type: "respond", text: ["no ", "templates"], delayMs: 200, usage: { inputTokens: 10, outputTokens: 2 } },
      { type: "respond", text: "answer to A" },
    );
    const created = await call("POST", "/api/v1/chats", { prompt: "what templates are there?" });
    expect(created.status).toBe(201);
    await waitForStatus(created.body.id, ["running"]);
    expect((await call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "A" })).body.queued).toBe(true);
    const deadline = Date.now() + 30_000;
    let seen: string[] = [];
    while (Date.now() < deadline) {
      seen = await texts(created.body.id);
      if (seen.length >= 6) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await waitForStatus(created.body.id, ["waiting"]);
    expect(await texts(created.body.id)).toEqual([
      "user: what templates are there?", "assistant: list_templates", "tool: list_templates", "assistant: no templates", "user: A", "assistant: answer to A",
    ]);
    const messages = (await call("GET", `/api/v1/chats/${created.body.id}/messages`)).body.messages;
    expect(messages[3].usage).toMatchObject({ inputTokens: 10, outputTokens: 2 });
    expect(messages[1].usage).not.toBeNull();
  });
});
