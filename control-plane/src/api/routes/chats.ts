import { createRoute, z } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import { streamSSE } from "hono/streaming";
import { close } from "../../chats/services.ts";
import * as Store from "../../chats/store.ts";
import type { ChatEvent } from "../../chats/types.ts";
import { chatToolCalls } from "../../db/schema.ts";
import { ConflictError } from "../../errors.ts";
import * as Workspaces from "../../workspaces/index.ts";
import { createRouter } from "../app.ts";
import type { AppDeps } from "../context.ts";
import { Chat, ChatMessage, CreateChatRequest, errorResponses, json, QueuedMessage, SendMessageRequest, ToolCallApproval } from "../schemas.ts";

const ChatParam = z.object({ chat: z.string().min(1).openapi({ param: { name: "chat", in: "path" } }) });

export function chatRoutes(deps: AppDeps) {
  const app = createRouter();
  const { database } = deps;
  const { db } = database;
  const { bus } = deps.chats;
  const security = [{ bearer: [] }];

  app.openapi(createRoute({
    method: "post", path: "/chats", operationId: "chats.create", tags: ["chats"], security,
    summary: "Start a chat with the agent; its first turn starts at once",
    request: { body: { content: { "application/json": { schema: CreateChatRequest } }, required: true } },
    responses: { 201: json(Chat, "The chat, pending"), ...errorResponses },
  }), async (c) => {
    const body = c.req.valid("json");
    const actor = c.get("actor");
    const workspaceId = body.workspace ? (await Workspaces.find(db, actor, body.workspace)).id : null;
    const modelId = await deps.chats.resolveModelId(body.model ?? null);
    const chat = await Store.create(database, bus, { ownerId: actor.user.id, prompt: body.prompt, workspaceId, modelId, title: body.title });
    return c.json(Store.chatView(chat), 201);
  });

  app.openapi(createRoute({
    method: "get", path: "/chats", operationId: "chats.list", tags: ["chats"], security,
    request: { query: z.object({ parent: z.uuid().optional().describe("list the sub-agents of this chat") }) },
    responses: { 200: json(z.object({ chats: z.array(Chat) }), "Your chats, newest first"), 400: errorResponses[400], 401: errorResponses[401] },
  }), async (c) => c.json({ chats: (await Store.list(db, c.get("actor"), { parentChatId: c.req.valid("query").parent })).map(Store.chatView) }, 200));

  app.openapi(createRoute({
    method: "get", path: "/chats/{chat}", operationId: "chats.get", tags: ["chats"], security,
    request: { params: ChatParam },
    responses: { 200: json(z.object({ chat: Chat, queue: z.array(QueuedMessage), children: z.array(Chat) }), "The chat"), 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    const children = await Store.list(db, c.get("actor"), { parentChatId: chat.id });
    return c.json({ chat: Store.chatView(chat), queue: await Store.listQueue(db, chat.id), children: children.map(Store.chatView) }, 200);
  });

  app.openapi(createRoute({
    method: "delete", path: "/chats/{chat}", operationId: "chats.close", tags: ["chats"], security,
    summary: "Stop the chat and close it",
    request: { params: ChatParam },
    responses: { 204: { description: "Closed" }, 401: errorResponses[401], 404: errorResponses[404] },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    await close(database, bus, chat.id);
    return c.body(null, 204);
  });

  app.openapi(createRoute({
    method: "get", path: "/chats/{chat}/messages", operationId: "chats.messages", tags: ["chats"], security,
    summary: "Message history, oldest first; page with after (forward) or before (backward)",
    request: { params: ChatParam, query: z.object({ after: z.coerce.number().int().min(0).optional(), before: z.coerce.number().int().min(1).optional(), limit: z.coerce.number().int().min(1).max(1000).optional() }) },
    responses: { 200: json(z.object({ messages: z.array(ChatMessage), has_more: z.boolean() }), "Messages"), ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    const query = c.req.valid("query");
    const limit = query.limit ?? 200;
    const rows = await Store.messages(db, chat.id, { after: query.after, before: query.before, limit: limit + 1 });
    const hasMore = rows.length > limit;
    const page = query.before !== undefined ? rows.slice(hasMore ? 1 : 0) : rows.slice(0, limit);
    return c.json({ messages: page.map(Store.messageView), has_more: hasMore }, 200);
  });

  app.openapi(createRoute({
    method: "post", path: "/chats/{chat}/messages", operationId: "chats.send", tags: ["chats"], security,
    summary: "Send a message: delivered now when the chat waits, queued while a turn runs (interrupt stops the turn first)",
    request: { params: ChatParam, body: { content: { "application/json": { schema: SendMessageRequest } }, required: true } },
    responses: { 200: json(z.object({ queued: z.boolean(), message: ChatMessage.nullable(), queue: z.array(QueuedMessage) }), "Delivered or queued"), ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    const body = c.req.valid("json");
    return c.json(await Store.send(database, bus, chat, { parts: Store.textParts(body.content), interrupt: body.interrupt, userId: c.get("actor").user.id }), 200);
  });

  app.openapi(createRoute({
    method: "delete", path: "/chats/{chat}/queue/{id}", operationId: "chats.deleteQueued", tags: ["chats"], security,
    request: { params: ChatParam.extend({ id: z.coerce.number().int() }) },
    responses: { 200: json(z.object({ queue: z.array(QueuedMessage) }), "The queue"), ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    return c.json({ queue: await Store.deleteQueued(database, bus, chat.id, c.req.valid("param").id) }, 200);
  });

  app.openapi(createRoute({
    method: "post", path: "/chats/{chat}/queue/{id}/promote", operationId: "chats.promoteQueued", tags: ["chats"], security,
    request: { params: ChatParam.extend({ id: z.coerce.number().int() }) },
    responses: { 200: json(z.object({ queue: z.array(QueuedMessage) }), "The queue"), ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    return c.json({ queue: await Store.promoteQueued(database, bus, chat.id, c.req.valid("param").id) }, 200);
  });

  app.openapi(createRoute({
    method: "post", path: "/chats/{chat}/interrupt", operationId: "chats.interrupt", tags: ["chats"], security,
    summary: "Stop the running turn; partial output is kept",
    request: { params: ChatParam },
    responses: { 202: { description: "Interrupt requested" }, ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    await Store.requestInterrupt(database, chat.id);
    return c.body(null, 202);
  });

  app.openapi(createRoute({
    method: "post", path: "/chats/{chat}/compact", operationId: "chats.compact", tags: ["chats"], security,
    summary: "Summarize the history now (the chat must be waiting)",
    request: { params: ChatParam },
    responses: { 200: json(z.object({ compacted: z.boolean() }), "Whether a summary was written"), ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    if (chat.status !== "waiting" && chat.status !== "error") throw new ConflictError("chat_busy", `the chat is ${chat.status}; compact it when it waits`);
    return c.json({ compacted: await deps.chats.compactNow(chat.id) }, 200);
  });

  app.openapi(createRoute({
    method: "get", path: "/chats/{chat}/tool-calls", operationId: "chats.toolCalls", tags: ["chats"], security,
    summary: "Tool calls awaiting approval",
    request: { params: ChatParam },
    responses: { 200: json(z.object({ tool_calls: z.array(ToolCallApproval) }), "Pending approvals"), ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    const rows = await db.select().from(chatToolCalls).where(and(eq(chatToolCalls.chatId, chat.id), eq(chatToolCalls.status, "pending_approval")));
    return c.json({ tool_calls: rows.map((row) => ({ tool_call_id: row.toolCallId, tool_name: row.toolName, input: row.input, status: row.status, created_at: row.createdAt.toISOString() })) }, 200);
  });

  app.openapi(createRoute({
    method: "post", path: "/chats/{chat}/tool-calls/{tool_call_id}/decision", operationId: "chats.decide", tags: ["chats"], security,
    summary: "Approve or deny a tool call that awaits approval",
    request: { params: ChatParam.extend({ tool_call_id: z.string().min(1) }), body: { content: { "application/json": { schema: z.object({ approved: z.boolean() }).openapi("ToolDecision") } }, required: true } },
    responses: { 200: json(z.object({ status: z.string() }), "The chat's status after the decision"), ...errorResponses },
  }), async (c) => {
    const params = c.req.valid("param");
    const chat = await Store.find(db, c.get("actor"), params.chat);
    return c.json({ status: await Store.decideApproval(database, bus, chat.id, params.tool_call_id, c.req.valid("json").approved) }, 200);
  });

  app.openapi(createRoute({
    method: "get", path: "/chats/{chat}/stream", operationId: "chats.stream", tags: ["chats"], security,
    summary: "Server-sent events of one chat. First a snapshot (status, queue, messages after ?after_message), then live events; resume with Last-Event-ID",
    request: { params: ChatParam, query: z.object({ after_message: z.coerce.number().int().min(0).optional() }) },
    responses: { 200: { description: "text/event-stream", content: { "text/event-stream": { schema: z.string() } } }, ...errorResponses },
  }), async (c) => {
    const chat = await Store.find(db, c.get("actor"), c.req.valid("param").chat);
    const lastEventId = Number(c.req.header("last-event-id") ?? NaN);
    let lastMessageId = c.req.valid("query").after_message ?? 0;
    return streamSSE(c, async (stream) => {
      const outbox: { id: number; event: ChatEvent }[] = [];
      let wake: () => void = () => {};
      const push = (id: number, event: ChatEvent) => {
        outbox.push({ id, event });
        wake();
      };
      const unsubscribe = bus.subscribe(chat.id, (stamped) => push(stamped.id, stamped.event));
      const reload = async () => {
        const current = await Store.get(db, chat.id);
        for (const message of await Store.messages(db, chat.id, { after: lastMessageId, limit: 1000 })) {
          push(bus.currentId(), { type: "message.committed", chat_id: chat.id, message: Store.messageView(message) });
        }
        if (current) push(bus.currentId(), { type: "status", chat_id: chat.id, status: current.status, error: current.lastError });
      };
      const unsubscribeRemote = bus.onRemoteChange((chatId) => chatId === chat.id && void reload());
      stream.onAbort(() => wake());
      try {
        const replay = Number.isFinite(lastEventId) ? bus.replay(chat.id, lastEventId) : null;
        if (replay) {
          for (const stamped of replay) push(stamped.id, stamped.event);
        } else {
          const snapshotId = bus.currentId();
          const current = (await Store.get(db, chat.id))!;
          const history = await Store.messages(db, chat.id, { after: lastMessageId, limit: 1000 });
          await stream.writeSSE({ id: String(snapshotId), event: "snapshot", data: JSON.stringify({ chat: Store.chatView(current), queue: await Store.listQueue(db, chat.id), messages: history.map(Store.messageView) }) });
          lastMessageId = history.at(-1)?.id ?? lastMessageId;
          // Events published while the snapshot was read are already in it or still in the outbox.
        }
        while (!stream.aborted) {
          while (outbox.length > 0) {
            const { id, event } = outbox.shift()!;
            if (event.type === "message.committed") {
              if (event.message.id <= lastMessageId) continue;
              lastMessageId = event.message.id;
            }
            await stream.writeSSE({ id: String(id), event: event.type, data: JSON.stringify(event) });
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000);
          });
          if (outbox.length === 0 && !stream.aborted) await stream.write(": keep-alive\n\n");
        }
      } finally {
        unsubscribe();
        unsubscribeRemote();
      }
    }) as never;
  });

  app.openapi(createRoute({
    method: "get", path: "/chats-stream", operationId: "chats.watch", tags: ["chats"], security,
    summary: "Server-sent status changes of all your chats",
    responses: { 200: { description: "text/event-stream", content: { "text/event-stream": { schema: z.string() } } }, 401: errorResponses[401] },
  }), async (c) => {
    const actor = c.get("actor");
    const owners = new Map<string, boolean>();
    return streamSSE(c, async (stream) => {
      const outbox: ChatEvent[] = [];
      let wake: () => void = () => {};
      const consider = async (chatId: string, event: ChatEvent) => {
        if (!owners.has(chatId)) owners.set(chatId, (await Store.get(db, chatId))?.ownerId === actor.user.id);
        if (!owners.get(chatId)) return;
        outbox.push(event);
        wake();
      };
      const unsubscribe = bus.subscribeAll((stamped) => stamped.event.type === "status" && void consider(stamped.event.chat_id, stamped.event));
      const unsubscribeRemote = bus.onRemoteChange(async (chatId) => {
        const chat = await Store.get(db, chatId);
        if (chat) void consider(chatId, { type: "status", chat_id: chatId, status: chat.status, error: chat.lastError });
      });
      stream.onAbort(() => wake());
      try {
        while (!stream.aborted) {
          while (outbox.length > 0) {
            const event = outbox.shift()!;
            await stream.writeSSE({ event: event.type, data: JSON.stringify(event) });
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000);
          });
          if (outbox.length === 0 && !stream.aborted) await stream.write(": keep-alive\n\n");
        }
      } finally {
        unsubscribe();
        unsubscribeRemote();
      }
    }) as never;
  });

  return app;
}
