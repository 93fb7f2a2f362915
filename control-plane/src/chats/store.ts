import { randomUUID } from "node:crypto";
import { and, asc, desc, eq, getTableColumns, gt, gte, inArray, isNull, lt, notExists, sql, type Placeholder, type SQL, type SQLWrapper } from "drizzle-orm";
import { isAdmin, type Actor } from "../auth/index.ts";
import { prepareQuery, queryRows, type Database, type DatabaseHandle, type Executor } from "../db/index.ts";
import { chatMessages, chatQueuedMessages, chats, chatToolCalls } from "../db/schema.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import type { ChatEventBus } from "./events.ts";
import type { ChatStatus, ChatView, MessagePart, MessageView, QueuedView, Usage } from "./types.ts";

export type Chat = typeof chats.$inferSelect;
export type Message = typeof chatMessages.$inferSelect;
export const CHATS_CHANNEL = "kiln_chats";

export function chatView(chat: Chat): ChatView {
  return {
    id: chat.id, owner_id: chat.ownerId, workspace_id: chat.workspaceId, parent_chat_id: chat.parentChatId, root_chat_id: chat.rootChatId,
    title: chat.title, status: chat.status, model_id: chat.modelId, last_error: chat.lastError, archived: chat.archived,
    created_at: chat.createdAt.toISOString(), updated_at: chat.updatedAt.toISOString(),
  };
}

export function messageView(message: Message): MessageView {
  return {
    id: message.id, chat_id: message.chatId, role: message.role, parts: message.parts as MessagePart[], usage: (message.usage as Usage | null) ?? null,
    compressed: message.compressed, visibility: message.visibility, created_at: message.createdAt.toISOString(),
  };
}

function queuedView(row: typeof chatQueuedMessages.$inferSelect): QueuedView {
  return { id: row.id, parts: row.parts as MessagePart[], position: row.position, created_at: row.createdAt.toISOString() };
}

/** A chat the actor may see; someone else's is reported as not found. */
export async function find(db: Database, actor: Actor, chatId: string): Promise<Chat> {
  if (!/^[0-9a-f-]{36}$/i.test(chatId)) throw new NotFoundError("chat", { chat_id: chatId });
  const [chat] = await db.select().from(chats).where(eq(chats.id, chatId));
  if (!chat || (chat.ownerId !== actor.user.id && !isAdmin(actor))) throw new NotFoundError("chat", { chat_id: chatId });
  return chat;
}

export async function get(db: Database, chatId: string): Promise<Chat | null> {
  const [chat] = await db.select().from(chats).where(eq(chats.id, chatId));
  return chat ?? null;
}

export async function list(db: Database, actor: Actor, options: { parentChatId?: string; limit?: number } = {}): Promise<Chat[]> {
  const conditions = [eq(chats.ownerId, actor.user.id), eq(chats.archived, false)];
  conditions.push(options.parentChatId ? eq(chats.parentChatId, options.parentChatId) : isNull(chats.parentChatId));
  return db.select().from(chats).where(and(...conditions)).orderBy(desc(chats.updatedAt)).limit(options.limit ?? 100);
}

export function textParts(text: string): MessagePart[] {
  return [{ type: "text", text }];
}

/** Creates a chat whose first prompt is already stored, so a worker picks it up at once. */
export async function create(
  database: DatabaseHandle,
  bus: ChatEventBus,
  input: { ownerId: string; prompt: string; workspaceId?: string | null; modelId?: string | null; title?: string; parentChatId?: string | null; rootChatId?: string | null },
): Promise<Chat> {
  if (!input.prompt.trim()) throw new ValidationError("the prompt is empty", { field: "prompt", reason: "must not be empty" });
  // One statement, so one implicit transaction: the first message is a data-modifying CTE (the foreign
  // key is checked at the end of the statement, when both rows exist), and the NOTIFYs ride on the
  // insert and go out at COMMIT, so a worker wakes without another round trip.
  const db = database.db;
  const chatId = randomUUID();
  const since = bus.currentId();
  const firstMessage = db.$with("first_message").as(
    db.insert(chatMessages).values({ chatId, role: "user", parts: textParts(input.prompt), createdBy: input.ownerId }).returning({ id: chatMessages.id }),
  );
  const [row] = await db.with(firstMessage).insert(chats).values({
    id: chatId, ownerId: input.ownerId, workspaceId: input.workspaceId ?? null, modelId: input.modelId ?? null,
    title: input.title?.trim() || titleFrom(input.prompt), status: "pending",
    parentChatId: input.parentChatId ?? null, rootChatId: input.rootChatId ?? input.parentChatId ?? null,
  }).returning({ ...getTableColumns(chats), wake: wakeNotice(chats.id), notice: bus.remoteNotice(chats.id, "status") });
  const { wake: _wake, notice: _notice, ...chat } = row!;
  bus.publishPending(chat.id, since, { notified: true });
  return chat;
}

/** `database.notify(CHATS_CHANNEL, chatId)` as an expression for a RETURNING list (sent at commit). */
export function wakeNotice(chatId: SQLWrapper): SQL {
  return sql`pg_notify(${CHATS_CHANNEL}, ${chatId}::text)`;
}

function titleFrom(prompt: string): string {
  const line = prompt.trim().split("\n")[0]!;
  return line.length > 80 ? `${line.slice(0, 77)}…` : line;
}

/**
 * Delivers a user message: straight into the conversation when the chat is idle, otherwise into the
 * queue (delivered when the turn ends). `interrupt` asks the running turn to stop early.
 */
export async function send(
  database: DatabaseHandle,
  bus: ChatEventBus,
  chat: Chat,
  input: { parts: MessagePart[]; interrupt?: boolean; userId: string },
): Promise<{ queued: boolean; message: MessageView | null; queue: QueuedView[] }> {
  const since = bus.currentId();
  const result = await database.db.transaction(async (transaction) => {
    const [current] = await transaction.select().from(chats).where(eq(chats.id, chat.id)).for("update");
    if (!current) throw new NotFoundError("chat", { chat_id: chat.id });
    if (current.archived) throw new ConflictError("chat_closed", "this chat is closed");
    if (current.status === "waiting" || current.status === "error") {
      const [message] = await transaction.insert(chatMessages).values({ chatId: chat.id, role: "user", parts: input.parts, createdBy: input.userId }).returning();
      await transaction.update(chats).set({ status: "pending", lastError: null, interruptRequested: false, updatedAt: new Date() }).where(eq(chats.id, chat.id));
      return { queued: false, message: messageView(message!) };
    }
    const [last] = await transaction.select({ position: chatQueuedMessages.position }).from(chatQueuedMessages).where(eq(chatQueuedMessages.chatId, chat.id)).orderBy(desc(chatQueuedMessages.position)).limit(1);
    await transaction.insert(chatQueuedMessages).values({ chatId: chat.id, parts: input.parts, position: (last?.position ?? 0) + 1, createdBy: input.userId });
    if (input.interrupt) await transaction.update(chats).set({ interruptRequested: true }).where(eq(chats.id, chat.id));
    return { queued: true, message: null };
  });
  const queue = await listQueue(database.db, chat.id);
  if (result.queued) bus.publish({ type: "queue.updated", chat_id: chat.id, queue });
  else {
    bus.publish({ type: "message.committed", chat_id: chat.id, message: result.message! });
    bus.publishPending(chat.id, since);
  }
  await database.notify(CHATS_CHANNEL, chat.id);
  return { ...result, queue };
}

export async function listQueue(db: Database, chatId: string): Promise<QueuedView[]> {
  const rows = await db.select().from(chatQueuedMessages).where(eq(chatQueuedMessages.chatId, chatId)).orderBy(asc(chatQueuedMessages.position), asc(chatQueuedMessages.id));
  return rows.map(queuedView);
}

export async function deleteQueued(database: DatabaseHandle, bus: ChatEventBus, chatId: string, queuedId: number): Promise<QueuedView[]> {
  const removed = await database.db.delete(chatQueuedMessages).where(and(eq(chatQueuedMessages.chatId, chatId), eq(chatQueuedMessages.id, queuedId))).returning();
  if (removed.length === 0) throw new NotFoundError("queued message", { id: queuedId });
  const queue = await listQueue(database.db, chatId);
  bus.publish({ type: "queue.updated", chat_id: chatId, queue });
  return queue;
}

/** Moves a queued message to the front of the queue. */
export async function promoteQueued(database: DatabaseHandle, bus: ChatEventBus, chatId: string, queuedId: number): Promise<QueuedView[]> {
  await database.db.transaction(async (transaction) => {
    const [first] = await transaction.select({ position: chatQueuedMessages.position }).from(chatQueuedMessages).where(eq(chatQueuedMessages.chatId, chatId)).orderBy(asc(chatQueuedMessages.position)).limit(1);
    const updated = await transaction.update(chatQueuedMessages).set({ position: (first?.position ?? 1) - 1 })
      .where(and(eq(chatQueuedMessages.chatId, chatId), eq(chatQueuedMessages.id, queuedId))).returning();
    if (updated.length === 0) throw new NotFoundError("queued message", { id: queuedId });
  });
  const queue = await listQueue(database.db, chatId);
  bus.publish({ type: "queue.updated", chat_id: chatId, queue });
  return queue;
}

export async function requestInterrupt(database: DatabaseHandle, chatId: string): Promise<void> {
  await database.db.update(chats).set({ interruptRequested: true }).where(and(eq(chats.id, chatId), inArray(chats.status, ["pending", "running"])));
  await database.notify(CHATS_CHANNEL, chatId);
}

export async function messages(db: Database, chatId: string, options: { after?: number; before?: number; limit?: number } = {}): Promise<Message[]> {
  const limit = Math.min(options.limit ?? 200, 1000);
  if (options.before !== undefined) {
    const rows = await db.select().from(chatMessages).where(and(eq(chatMessages.chatId, chatId), lt(chatMessages.id, options.before))).orderBy(desc(chatMessages.id)).limit(limit);
    return rows.reverse();
  }
  return db.select().from(chatMessages).where(and(eq(chatMessages.chatId, chatId), gt(chatMessages.id, options.after ?? 0))).orderBy(asc(chatMessages.id)).limit(limit);
}

/** Postgres text and jsonb cannot hold NUL; tool output sometimes does (e.g. /proc/self/environ). */
export function withoutNul<T>(value: T): T {
  if (typeof value === "string") return (value.includes("\u0000") ? value.replaceAll("\u0000", "\uFFFD") : value) as T;
  if (Array.isArray(value)) return value.map(withoutNul) as T;
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, withoutNul(entry)])) as T;
  return value;
}

type NewMessage = { chatId: string; role: Message["role"]; parts: MessagePart[]; usage?: Usage | null; compressed?: boolean; modelId?: string | null; visibility?: Message["visibility"] };

function messageValues(input: NewMessage) {
  return {
    chatId: input.chatId, role: input.role, parts: withoutNul(input.parts), usage: input.usage ?? null, compressed: input.compressed ?? false,
    modelId: input.modelId ?? null, visibility: input.visibility ?? "both",
  };
}

/** Stores a message; `notice` (a `ChatEventBus.remoteNotice`) is sent when it commits. */
export async function appendMessage(executor: Executor, input: NewMessage, options: { notice?: SQL } = {}): Promise<Message> {
  if (!options.notice) {
    const [message] = await executor.insert(chatMessages).values(messageValues(input)).returning();
    return message!;
  }
  const [row] = await executor.insert(chatMessages).values(messageValues(input)).returning({ ...getTableColumns(chatMessages), notice: options.notice });
  const { notice: _notice, ...message } = row!;
  return message;
}

/** On a record's conflict: a model can use a call id again, in a later reply; the record then follows the latest use. */
const reused = { messageId: sql`excluded.message_id`, toolName: sql`excluded.tool_name`, input: sql`excluded.input` };

/**
 * A reply that asks for tools, and the records of its calls that start now (`running`) or wait for
 * approval, in one statement: a call's record is durable before its tool runs (a server that dies
 * mid-call must not run it twice blind) without a round trip of its own. The records are a
 * data-modifying CTE that takes the reply's id from the other; an existing record with the same id
 * is overwritten, as `upsertToolCall` does. Call ids must be distinct. The reply's notice tells
 * other replicas the chat changed; they reload it, so the records need no notice of their own.
 */
export async function appendReply(
  db: Database, bus: ChatEventBus, input: NewMessage, calls: { toolCallId: string; toolName: string; input: unknown; status: "running" | "pending_approval" }[],
): Promise<Message> {
  const values = messageValues(input);
  const byBus = hotStatements(db).reply;
  let statement = byBus.get(bus);
  if (!statement) byBus.set(bus, (statement = prepareReply(db, bus)));
  const [row] = await statement.execute({
    ...values, parts: JSON.stringify(values.parts), usage: values.usage === null ? null : JSON.stringify(values.usage),
    records: JSON.stringify(calls.map((call) => ({ tool_call_id: call.toolCallId, tool_name: call.toolName, input: withoutNul(call.input), status: call.status }))),
  });
  const { notice: _notice, ...message } = row!;
  return message;
}

/** `appendReply`'s statement, prepared once per database and bus (its notice carries the bus's origin); the records are one JSON array. */
function prepareReply(db: Database, bus: ChatEventBus) {
  const chatId = sql.placeholder("chatId");
  const reply = db.$with("reply").as(db.insert(chatMessages).values({
    chatId, role: sql.placeholder("role"), parts: sql`${sql.placeholder("parts")}::jsonb`, usage: sql`${sql.placeholder("usage")}::jsonb`,
    compressed: sql.placeholder("compressed"), modelId: sql.placeholder("modelId"), visibility: sql.placeholder("visibility"),
  }).returning({ ...getTableColumns(chatMessages), notice: bus.remoteNotice(chatId, "message.committed").as("notice") }));
  // The columns in the table's order, as an INSERT … SELECT needs them.
  const records = db.$with("records").as(db.insert(chatToolCalls).select(sql`select ${chatId}::uuid, r.tool_call_id, (select ${sql.identifier("id")} from ${reply}), r.tool_name, r.input, r.status, null::jsonb, now(), now()
      from jsonb_to_recordset(${sql.placeholder("records")}::jsonb) as r(tool_call_id text, tool_name text, input jsonb, status text)`)
    .onConflictDoUpdate({ target: [chatToolCalls.chatId, chatToolCalls.toolCallId], set: { ...reused, status: sql`excluded.status`, result: null, updatedAt: sql`now()` } })
    .returning({ toolCallId: chatToolCalls.toolCallId }));
  // A data-modifying CTE runs to completion, unreferenced.
  return prepareQuery(db.with(reply, records).select().from(reply));
}

/**
 * A turn's last message and, unless a user message is queued, the turn's end (status `waiting`, lease
 * released) in one statement. `ended` is false when something is queued: the caller ends the turn
 * the long way. The notices go out when it commits.
 */
export async function appendLastMessage(db: Database, bus: ChatEventBus, input: NewMessage): Promise<{ message: Message; ended: boolean }> {
  const values = messageValues(input);
  const [row] = await lastMessageStatement(db, bus).execute({
    ...values, parts: JSON.stringify(values.parts), usage: values.usage === null ? null : JSON.stringify(values.usage), now: new Date().toISOString(),
  });
  const { notice: _notice, ended: turnEnded, ...message } = row!;
  return { message, ended: turnEnded };
}

/** Prepared once per database and bus (its notices carry the bus's origin). */
function lastMessageStatement(db: Database, bus: ChatEventBus) {
  const byBus = hotStatements(db).lastMessage;
  let statement = byBus.get(bus);
  if (!statement) byBus.set(bus, (statement = prepareLastMessage(db, bus)));
  return statement;
}

function prepareLastMessage(db: Database, bus: ChatEventBus) {
  const chatId = sql.placeholder("chatId");
  const ended = db.$with("ended").as(
    db.update(chats).set({ status: "waiting", updatedAt: sql`${sql.placeholder("now")}::timestamptz`, workerId: null, leaseExpiresAt: null, interruptRequested: false, lastError: null })
      .where(and(eq(chats.id, chatId), nothingQueued(db, chatId)))
      .returning({ id: chats.id, notice: bus.remoteNotice(chatId, "status") }),
  );
  // jsonb goes in as JSON text: node-postgres would turn a JS array into a Postgres array.
  return prepareQuery(db.with(ended).insert(chatMessages).values({
    chatId, role: sql.placeholder("role"), parts: sql`${sql.placeholder("parts")}::jsonb`, usage: sql`${sql.placeholder("usage")}::jsonb`,
    compressed: sql.placeholder("compressed"), modelId: sql.placeholder("modelId"), visibility: sql.placeholder("visibility"),
  }).returning({ ...getTableColumns(chatMessages), notice: bus.remoteNotice(chatId, "message.committed"), ended: sql<boolean>`exists (select 1 from ${ended})` }));
}

/** No message waits in the chat's queue (a condition for ending a turn in one statement). */
export function nothingQueued(db: Database, chatId: string | Placeholder): SQL {
  return notExists(db.select({ id: chatQueuedMessages.id }).from(chatQueuedMessages).where(eq(chatQueuedMessages.chatId, chatId)));
}

/** Messages the model sees: the latest compaction summary and everything after it. */
export async function contextMessages(db: Database, chatId: string): Promise<Message[]> {
  return hotStatements(db).context.execute({ chatId });
}

/** The statements every agent step runs, prepared once per database (see `prepareQuery`). */
function hotStatements(db: Database) {
  let statements = preparedStatements.get(db);
  if (!statements) preparedStatements.set(db, (statements = prepareHotStatements(db)));
  return statements;
}

function prepareHotStatements(db: Database) {
  const chatId = sql.placeholder("chatId");
  const latestSummary = db.select({ id: sql<number>`coalesce(max(${chatMessages.id}), 0)` }).from(chatMessages)
    .where(and(eq(chatMessages.chatId, chatId), eq(chatMessages.compressed, true)));
  return {
    lastMessage: new WeakMap<ChatEventBus, ReturnType<typeof prepareLastMessage>>(),
    reply: new WeakMap<ChatEventBus, ReturnType<typeof prepareReply>>(),
    context: prepareQuery(db.select().from(chatMessages)
      .where(and(eq(chatMessages.chatId, chatId), gte(chatMessages.id, latestSummary), inArray(chatMessages.visibility, ["model", "both"])))
      .orderBy(asc(chatMessages.id))),
  };
}

const preparedStatements = new WeakMap<Database, ReturnType<typeof prepareHotStatements>>();

export type ToolCallRecord = typeof chatToolCalls.$inferSelect;

export async function toolCalls(db: Database, chatId: string, ids: string[]): Promise<Map<string, ToolCallRecord>> {
  if (ids.length === 0) return new Map();
  const rows = await db.select().from(chatToolCalls).where(and(eq(chatToolCalls.chatId, chatId), inArray(chatToolCalls.toolCallId, ids)));
  return new Map(rows.map((row) => [row.toolCallId, row]));
}

/** Records a tool call's state; `notice` (a `ChatEventBus.remoteNotice`) is sent when it commits. */
export async function upsertToolCall(db: Database, input: { chatId: string; toolCallId: string; messageId: number; toolName: string; input: unknown; status: ToolCallRecord["status"]; result?: unknown }, options: { notice?: SQL } = {}): Promise<void> {
  const result = withoutNul(input.result ?? null);
  const upsert = db.insert(chatToolCalls).values({ ...input, input: withoutNul(input.input), result })
    .onConflictDoUpdate({ target: [chatToolCalls.chatId, chatToolCalls.toolCallId], set: { ...reused, status: input.status, result, updatedAt: new Date() } });
  if (options.notice) await upsert.returning({ notice: options.notice });
  else await upsert;
}

/**
 * A tool call's result (status `done`) and the tool message carrying it, in one statement (the call's
 * record is a data-modifying CTE); both notices go out when it commits.
 */
export async function finishToolCall(
  db: Database,
  call: { chatId: string; toolCallId: string; messageId: number; toolName: string; input: unknown; result: unknown },
  message: NewMessage,
  notices: { call: SQL; message: SQL },
): Promise<Message> {
  const result = withoutNul(call.result);
  const done = db.$with("done").as(db.insert(chatToolCalls).values({ ...call, input: withoutNul(call.input), status: "done", result })
    .onConflictDoUpdate({ target: [chatToolCalls.chatId, chatToolCalls.toolCallId], set: { ...reused, status: "done", result, updatedAt: new Date() } })
    .returning({ toolCallId: chatToolCalls.toolCallId, notice: notices.call }));
  // A data-modifying CTE runs to completion, RETURNING (and so its notice) included, unreferenced.
  const [row] = await db.with(done).insert(chatMessages).values(messageValues(message))
    .returning({ ...getTableColumns(chatMessages), notice: notices.message });
  const { notice: _notice, ...stored } = row!;
  return stored;
}

/** Approves or denies a tool call awaiting approval; once none is left, the chat goes back to its worker. */
export async function decideApproval(database: DatabaseHandle, bus: ChatEventBus, chatId: string, toolCallId: string, approved: boolean): Promise<ChatStatus> {
  const since = bus.currentId();
  const status = await database.db.transaction(async (transaction) => {
    const [current] = await transaction.select().from(chats).where(eq(chats.id, chatId)).for("update");
    const updated = await transaction.update(chatToolCalls).set({ status: approved ? "approved" : "denied", updatedAt: new Date() })
      .where(and(eq(chatToolCalls.chatId, chatId), eq(chatToolCalls.toolCallId, toolCallId), eq(chatToolCalls.status, "pending_approval"))).returning();
    if (updated.length === 0) throw new NotFoundError("tool call awaiting approval", { tool_call_id: toolCallId });
    const rows = await queryRows<{ count: number }>(transaction, sql`SELECT count(*)::int AS count FROM chat_tool_calls WHERE chat_id = ${chatId} AND status = 'pending_approval'`);
    if ((rows[0]?.count ?? 0) > 0 || current?.status !== "requires_action") return current?.status ?? "requires_action";
    await transaction.update(chats).set({ status: "pending", updatedAt: new Date() }).where(eq(chats.id, chatId));
    return "pending" as const;
  });
  if (status === "pending") {
    bus.publishPending(chatId, since);
    await database.notify(CHATS_CHANNEL, chatId);
  }
  return status;
}

export async function setStatus(executor: Executor, chatId: string, status: ChatStatus, values: Partial<Pick<Chat, "lastError" | "workerId" | "leaseExpiresAt" | "interruptRequested">> = {}): Promise<void> {
  await executor.update(chats).set({ status, updatedAt: new Date(), ...values }).where(eq(chats.id, chatId));
}
