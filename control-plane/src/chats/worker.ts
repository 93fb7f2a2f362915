import { randomUUID } from "node:crypto";
import { and, eq, getTableColumns, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import type { AgentConnection, Tunnel } from "../api/context.ts";
import type { Actor } from "../auth/index.ts";
import { prepareQuery, type DatabaseHandle } from "../db/index.ts";
import { chatQueuedMessages, chats, users } from "../db/schema.ts";
import { LlmError, type LlmProvider } from "../llm/index.ts";
import type { Logger } from "../logger.ts";
import { decisionFor } from "../admin/settings.ts";
import { connectToWorkspace } from "./connection.ts";
import { overThreshold, summarize, SUMMARY_PREFIX, worthCompacting } from "./compaction.ts";
import { toLlmMessages, toolCallsOf } from "./context.ts";
import type { ChatEventBus } from "./events.ts";
import * as Store from "./store.ts";
import { capForModel, toLlmTools, toolsFor, type Tool, type ToolOutput, type ToolServices } from "./tools/index.ts";
import type { ChatStatus, MessagePart, Usage } from "./types.ts";

export interface ResolvedModel {
  modelId: string;
  model: string;
  provider: LlmProvider;
  contextWindow: number;
  compactionThreshold: number;
  maxOutputTokens: number;
}

export type ToolPolicy = Record<string, "allow" | "ask" | "deny">;

export interface ChatWorkerOptions {
  database: DatabaseHandle;
  bus: ChatEventBus;
  tunnel: Tunnel;
  log: Logger;
  /**
   * `configVersion` is the value of `configVersion` below at the claim: the same value means the same
   * answer, so these may answer from a cache without a query.
   */
  resolveModel(modelId: string | null, configVersion?: string): Promise<ResolvedModel>;
  systemPrompt(configVersion?: string): Promise<string>;
  toolPolicy(configVersion?: string): Promise<ToolPolicy>;
  /** A SQL expression that changes whenever anything resolveModel, systemPrompt or toolPolicy read changes; evaluated by the claim. */
  configVersion?: SQL;
  services: ToolServices;
  /** Chats this process runs at once. */
  concurrency?: number;
  leaseMs?: number;
  pollMs?: number;
  maxSteps?: number;
  retry?: { attempts: number; baseMs: number };
  workerId?: string;
}

interface Claimed {
  chat: Store.Chat;
  configVersion: string | undefined;
  /** A digest of the owner's row at the claim (null: no such user). */
  ownerVersion: string | null;
}

interface ActiveTurn {
  controller: AbortController;
  reason: "interrupt" | "closed" | "lease" | "shutdown" | null;
  /**
   * Claim once this turn is gone: it ended by taking the next queued message (the chat is pending
   * again), or the chat was notified while running (the change may have made it claimable).
   */
  claimAfter: boolean;
}

/**
 * Runs agent turns: claims pending chats with SKIP LOCKED (woken by NOTIFY, polling as a fallback),
 * holds a lease with heartbeats, and resumes chats whose worker died once their lease expires.
 */
export class ChatWorker {
  readonly workerId: string;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly maxSteps: number;
  private readonly retry: { attempts: number; baseMs: number };
  private readonly active = new Map<string, ActiveTurn>();
  private readonly connections = new Map<string, { workspaceId: string; connection: Promise<AgentConnection> }>();
  /** Owners by id with the digest of their row when read (see `ownerOf`). */
  private readonly owners = new Map<string, { version: string; user: Actor["user"] }>();
  private running = false;
  private wakeUp: (() => void) | null = null;
  private pendingWake = false;
  /** The last claim loop stopped at the concurrency limit, so a finished turn frees a slot someone waits for. */
  private saturated = false;
  private loop: Promise<void> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;

  constructor(private readonly options: ChatWorkerOptions) {
    this.workerId = options.workerId ?? `chat-worker-${randomUUID().slice(0, 8)}`;
    this.concurrency = options.concurrency ?? 200;
    this.leaseMs = options.leaseMs ?? 120_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.maxSteps = options.maxSteps ?? 100;
    this.retry = options.retry ?? { attempts: 5, baseMs: 1_000 };
  }

  get activeCount(): number {
    return this.active.size;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unlisten = await this.options.database.listen(Store.CHATS_CHANNEL, (chatId) => {
      const turn = this.active.get(chatId);
      if (turn) {
        turn.claimAfter = true;
        void this.checkControl(chatId);
      } else this.wake();
    });
    this.heartbeat = setInterval(() => void this.renewLeases(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.unlisten?.();
    await this.loop;
    for (const turn of this.active.values()) {
      turn.reason = "shutdown";
      turn.controller.abort(new Error("server shutting down"));
    }
  }

  wake(): void {
    this.pendingWake = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.pendingWake = false;
      try {
        while (this.running && this.active.size < this.concurrency) {
          const wanted = Math.min(50, this.concurrency - this.active.size);
          const claimed = await this.claim(wanted);
          for (const chat of claimed) this.startTurn(chat);
          if (claimed.length < wanted) break;
        }
        this.saturated = this.active.size >= this.concurrency;
      } catch (error) {
        this.options.log.warn({ err: error }, "chat claim failed");
      }
      if (!this.running) break;
      if (this.pendingWake) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
    }
  }

  private async claim(limit: number): Promise<Claimed[]> {
    const rows = await this.statements.claim.execute({ limit });
    return rows.map(({ notice: _notice, configVersion, ownerVersion, ...chat }) => ({ chat, configVersion: configVersion === null ? undefined : String(configVersion), ownerVersion }));
  }

  /** The worker's hot statements, prepared once (see `prepareQuery`). */
  private get statements() {
    this.prepared ??= this.prepare();
    return this.prepared;
  }

  private prepared: ReturnType<ChatWorker["prepare"]> | null = null;

  private prepare() {
    // Claims and lease renewals use the control connection: they must not queue behind the turns' queries.
    const db = this.options.database.control;
    const claimable = db.select({ id: chats.id }).from(chats)
      .where(and(eq(chats.archived, false), or(eq(chats.status, "pending"), and(eq(chats.status, "running"), lt(chats.leaseExpiresAt, sql`now()`)))))
      .orderBy(chats.updatedAt)
      .limit(sql.placeholder("limit"))
      .for("update", { skipLocked: true });
    return {
      claim: prepareQuery(db.update(chats)
        .set({ status: "running", workerId: this.workerId, updatedAt: sql`now()`, leaseExpiresAt: sql`now() + make_interval(secs => ${this.leaseMs / 1000})` })
        .where(inArray(chats.id, claimable))
        // The `running` event's NOTIFY to other replicas rides on the claim (startTurn publishes it as notified).
        .returning({
          ...getTableColumns(chats), notice: this.options.bus.remoteNotice(chats.id, "status"), configVersion: this.options.configVersion ?? sql<null>`null`,
          ownerVersion: sql<string | null>`(SELECT md5(${users}::text) FROM ${users} WHERE ${users.id} = ${chats.ownerId})`,
        })),
      owner: prepareQuery(this.options.database.db.select().from(users).where(eq(users.id, sql.placeholder("ownerId")))),
    };
  }

  private async renewLeases(): Promise<void> {
    const ids = [...this.active.keys()];
    if (ids.length === 0) return;
    try {
      const renewed = await this.options.database.control.update(chats)
        .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${this.leaseMs / 1000})` })
        .where(and(inArray(chats.id, ids), eq(chats.workerId, this.workerId), eq(chats.status, "running")))
        .returning({ id: chats.id });
      const held = new Set(renewed.map((row) => row.id));
      for (const id of ids) {
        const turn = this.active.get(id);
        if (turn && !held.has(id)) {
          turn.reason = "lease";
          turn.controller.abort(new Error("lease lost"));
        }
      }
    } catch (error) {
      this.options.log.warn({ err: error }, "chat lease renewal failed");
    }
  }

  /** An interrupt or close request for a chat running here. */
  private async checkControl(chatId: string): Promise<void> {
    const turn = this.active.get(chatId);
    if (!turn) return;
    const chat = await Store.get(this.options.database.db, chatId);
    if (chat?.archived) {
      turn.reason = "closed";
      turn.controller.abort(new Error("chat closed"));
    } else if (chat?.interruptRequested) {
      turn.reason = "interrupt";
      turn.controller.abort(new Error("interrupted"));
    }
  }

  private startTurn({ chat, configVersion, ownerVersion }: Claimed): void {
    const turn: ActiveTurn = { controller: new AbortController(), reason: null, claimAfter: false };
    this.active.set(chat.id, turn);
    const log = this.options.log.child({ chatId: chat.id });
    this.options.bus.publish({ type: "status", chat_id: chat.id, status: "running", error: null }, { notified: true });
    void this.runTurn(chat, configVersion, ownerVersion, turn, log)
      .catch(async (error: unknown) => {
        if (turn.reason === "lease" || turn.reason === "shutdown") return;
        const raw = error instanceof LlmError ? error.message : error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
        // Internal failures (a database error, say) carry long details that belong in the log, not the chat.
        const message = raw.length > 500 ? `${raw.slice(0, 500)}… (see the server log)` : raw;
        log.warn({ err: error }, "chat turn failed");
        await this.finish(chat.id, { status: "error", error: message }).catch((finishError) => log.error({ err: finishError }, "could not record chat error"));
      })
      .finally(() => {
        this.active.delete(chat.id);
        this.options.bus.dropLater(chat.id);
        if (turn.claimAfter || this.saturated) this.wake();
      });
  }

  private async runTurn(initial: Store.Chat, configVersion: string | undefined, ownerVersion: string | null, turn: ActiveTurn, log: Logger): Promise<void> {
    const { database, bus } = this.options;
    const db = database.db;
    let chat = initial;
    if (chat.interruptRequested) await db.update(chats).set({ interruptRequested: false }).where(eq(chats.id, chat.id));
    // Independent reads, waited for together; model, prompt and policy usually come from the runtime's cache.
    const [owner, model, system, policy, firstContext] = await Promise.all([
      this.ownerOf(chat, ownerVersion), this.options.resolveModel(chat.modelId, configVersion), this.options.systemPrompt(configVersion), this.options.toolPolicy(configVersion),
      Store.contextMessages(db, chat.id),
    ]);
    // The context for the next step: read at the claim and after a compaction; otherwise extended in
    // memory with this worker's own appends (while the chat runs, only its worker adds messages:
    // `Store.send` queues, and a queued message is delivered when the turn ends).
    let loadedContext: Store.Message[] | null = firstContext;
    /** Records of the calls in a reply this turn just stored (made with it); null: read them. */
    let freshCalls: Map<string, PrerecordedStatus> | null = null;
    const tools = toolsFor({ isChild: chat.parentChatId !== null });
    const llmTools = toLlmTools(tools);
    const signal = turn.controller.signal;
    let steps = 0;
    let lastUsage: Usage | null = null;
    /** The last reply's statement also ended the turn. */
    let ended = false;

    /** The tool message of the last step, still being stored while the next model request goes out. */
    let storing: { message: Store.Message; stored: Promise<Store.Message> } | null = null;
    /** Waits for it and puts the stored message (with its id) in the context in place of the unstored one. */
    const settleStoring = async (context: Store.Message[]): Promise<Store.Message[]> => {
      if (!storing) return context;
      const { message, stored } = storing;
      storing = null;
      const toolMessage = await stored;
      return context.map((entry) => (entry === message ? toolMessage : entry));
    };

    while (!signal.aborted) {
      let context = loadedContext ?? await Store.contextMessages(db, chat.id);
      loadedContext = null;
      const fresh = freshCalls;
      freshCalls = null;
      const last = context.at(-1);
      const pendingCalls = toolCallsOf(last);
      if (last && pendingCalls.length > 0) {
        const settled = await this.settleToolCalls(chat, owner, last, pendingCalls, tools, policy, signal, log, (updated) => (chat = updated), fresh);
        if (settled === "requires_action") {
          await Store.setStatus(db, chat.id, "requires_action", { workerId: null, leaseExpiresAt: null });
          bus.publish({ type: "status", chat_id: chat.id, status: "requires_action", error: null });
          return;
        }
        // The next model request goes out while the tool message is being stored: one round trip
        // off every tool step. Nothing else is stored or published before that statement commits.
        storing = settled;
        loadedContext = withMessage(context, settled.message);
        continue;
      }
      if (!last || (last.role !== "user" && last.role !== "tool")) break;
      if (steps >= this.maxSteps || (overThreshold(model, lastUsage) && worthCompacting(context))) context = await settleStoring(context);
      if (steps >= this.maxSteps) {
        const note = await Store.appendMessage(db, { chatId: chat.id, role: "assistant", parts: [{ type: "text", text: `[stopped after ${this.maxSteps} steps in one turn; send a message to continue]` }], visibility: "user" });
        bus.publish({ type: "message.committed", chat_id: chat.id, message: Store.messageView(note) });
        break;
      }
      if (overThreshold(model, lastUsage) && worthCompacting(context)) {
        await this.compact(chat.id, model, context, signal);
        lastUsage = null;
        continue;
      }
      steps++;
      const step = await this.streamStep(chat, model, system, toLlmMessages(context), llmTools, signal, log, storing?.stored);
      context = await settleStoring(context);
      if (step.parts.length > 0) {
        const reply = { chatId: chat.id, role: "assistant" as const, parts: step.parts, usage: step.usage, modelId: model.modelId };
        if (!step.aborted && !signal.aborted && !step.parts.some((part) => part.type === "tool-call")) {
          // The turn's last step: store the reply and end the turn together.
          const last = await Store.appendLastMessage(db, bus, reply);
          bus.publish({ type: "message.committed", chat_id: chat.id, message: Store.messageView(last.message) }, { notified: true });
          if (last.ended) {
            bus.publish({ type: "status", chat_id: chat.id, status: "waiting", error: null }, { notified: true });
            ended = true;
          }
        } else {
          // The records of the calls that start now or wait for approval go in with the reply.
          const records = step.aborted || signal.aborted ? [] : recordsToStart(step.parts, policy);
          const message = await Store.appendReply(db, bus, reply, records);
          bus.publish({ type: "message.committed", chat_id: chat.id, message: Store.messageView(message) }, { notified: true });
          loadedContext = withMessage(context, message);
          freshCalls = new Map(records.map((record) => [record.toolCallId, record.status]));
        }
      }
      lastUsage = step.usage;
      if (step.aborted) break;
      if (!step.parts.some((part) => part.type === "tool-call")) break;
    }

    // An interrupt can end the loop between a tool step and the next request: its message is stored first.
    await settleStoring([]);
    if (turn.reason === "lease" || turn.reason === "shutdown") return;
    if (!ended && (await this.finish(chat.id, { status: "waiting" })) === "pending") turn.claimAfter = true;
    if (overThreshold(model, lastUsage)) {
      const context = await Store.contextMessages(db, chat.id);
      if (worthCompacting(context) && toolCallsOf(context.at(-1)).length === 0) {
        await this.compact(chat.id, model, context, new AbortController().signal).catch((error) => log.warn({ err: error }, "compaction after turn failed"));
      }
    }
  }

  /**
   * One model call with retries; keeps partial output when interrupted. The request goes out at once;
   * `before` (the statement storing the last tool message) is waited for before the first event is
   * handled and before returning, so nothing of the reply is published or stored ahead of it.
   */
  private async streamStep(
    chat: Store.Chat, model: ResolvedModel, system: string, messages: ReturnType<typeof toLlmMessages>, llmTools: ReturnType<typeof toLlmTools>, signal: AbortSignal, log: Logger,
    before?: Promise<unknown>,
  ): Promise<{ parts: MessagePart[]; usage: Usage | null; aborted: boolean }> {
    const { bus } = this.options;
    let ready = before === undefined;
    const waitReady = async () => {
      if (ready) return;
      await before;
      ready = true;
    };
    for (let attempt = 1; ; attempt++) {
      let text = "";
      let reasoning = "";
      let signature: string | undefined;
      const parts: MessagePart[] = [];
      const flushText = () => {
        if (reasoning) parts.push({ type: "reasoning", text: reasoning, ...(signature ? { signature } : {}) });
        if (text) parts.push({ type: "text", text });
        reasoning = "";
        text = "";
        signature = undefined;
      };
      let usage: Usage | null = null;
      try {
        for await (const event of model.provider.stream({ model: model.model, system, messages, tools: llmTools, maxOutputTokens: model.maxOutputTokens, signal })) {
          await waitReady();
          if (event.type === "text-delta") {
            if (reasoning) flushText();
            text += event.text;
            bus.publish({ type: "message.delta", chat_id: chat.id, part: "text", delta: event.text });
          } else if (event.type === "reasoning-delta") {
            if (text) flushText();
            reasoning += event.text;
            bus.publish({ type: "message.delta", chat_id: chat.id, part: "reasoning", delta: event.text });
          } else if (event.type === "reasoning-signature") {
            signature = event.signature;
          } else if (event.type === "tool-call") {
            flushText();
            parts.push({ type: "tool-call", toolCallId: event.toolCallId, toolName: event.toolName, input: event.input });
          } else if (event.type === "finish") {
            usage = event.usage;
          }
        }
        await waitReady();
        flushText();
        return { parts, usage, aborted: false };
      } catch (error) {
        // The tool message's statement failed: that ends the turn, whatever the model did.
        await waitReady();
        if (signal.aborted) {
          flushText();
          // Tool calls from a cut-off stream are dropped: the model never finished asking for them.
          return { parts: parts.filter((part) => part.type !== "tool-call"), usage, aborted: true };
        }
        const retryable = error instanceof LlmError && error.options.retryable;
        if (!retryable || attempt >= this.retry.attempts) throw error;
        const delay = Math.round(this.retry.baseMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4));
        log.info({ attempt, delay, err: error }, "provider error; retrying");
        bus.publish({ type: "retry", chat_id: chat.id, attempt, delay_ms: delay, message: (error as Error).message });
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (signal.aborted) return { parts: [], usage: null, aborted: true };
      }
    }
  }

  /**
   * Runs (or resumes) the tool calls of the last assistant message and stores their results as one tool
   * message. Calls that already finished keep their stored result; calls that were running when a server
   * died run again with the same idempotency key, which the daemon turns into an attach.
   */
  private async settleToolCalls(
    chat: Store.Chat, owner: Actor, message: Store.Message, calls: ReturnType<typeof toolCallsOf>, tools: Tool[], policy: ToolPolicy,
    signal: AbortSignal, log: Logger, onChatChange: (chat: Store.Chat) => void, fresh: Map<string, PrerecordedStatus> | null,
  ): Promise<SettledTools | "requires_action"> {
    const { database, bus } = this.options;
    const db = database.db;
    // A reply this turn stored has only the records stored with it (`fresh`); a resumed turn's (a crash, approvals) are read.
    const records = fresh ? new Map<string, Store.ToolCallRecord>() : await Store.toolCalls(db, chat.id, calls.map((call) => call.toolCallId));
    const awaiting: string[] = [];
    for (const call of calls) {
      const record = records.get(call.toolCallId);
      if (record) continue;
      if (decisionFor(policy, call.toolName) === "ask") {
        if (fresh?.get(call.toolCallId) !== "pending_approval") await Store.upsertToolCall(db, { chatId: chat.id, toolCallId: call.toolCallId, messageId: message.id, toolName: call.toolName, input: call.input, status: "pending_approval" }, { notice: bus.remoteNotice(chat.id, "approval.required") });
        bus.publish({ type: "approval.required", chat_id: chat.id, tool_call_id: call.toolCallId, tool_name: call.toolName, input: call.input }, { notified: true });
        awaiting.push(call.toolCallId);
      }
    }
    if (awaiting.length > 0 || [...records.values()].some((record) => record.status === "pending_approval")) return "requires_action";

    let current = chat;
    // A single call's `done` record is stored with the tool message, in one statement; parallel calls
    // record theirs (and publish tool.finished) each as it finishes.
    const single = calls.length === 1;
    const settled = await Promise.all(calls.map(async (call) => {
      const record = records.get(call.toolCallId);
      let output: ToolOutput;
      if (record?.status === "done") {
        output = record.result as ToolOutput;
      } else if (record?.status === "denied") {
        output = { output: "the user denied this tool call", isError: true };
      } else if (decisionFor(policy, call.toolName) === "deny") {
        output = { output: `the tool '${call.toolName}' is disabled by the administrator`, isError: true };
      } else if (signal.aborted) {
        output = { output: "interrupted by the user before it ran", isError: true };
      } else {
        if (fresh?.get(call.toolCallId) !== "running") await Store.upsertToolCall(db, { chatId: chat.id, toolCallId: call.toolCallId, messageId: message.id, toolName: call.toolName, input: call.input, status: "running" }, { notice: bus.remoteNotice(chat.id, "tool.started") });
        bus.publish({ type: "tool.started", chat_id: chat.id, tool_call_id: call.toolCallId, tool_name: call.toolName, input: call.input }, { notified: true });
        output = await this.runTool(current, owner, call, tools, signal, log, (updated) => {
          current = updated;
          onChatChange(updated);
        });
      }
      const unrecorded = record?.status !== "done";
      if (unrecorded && !single) {
        await Store.upsertToolCall(db, { chatId: chat.id, toolCallId: call.toolCallId, messageId: message.id, toolName: call.toolName, input: call.input, status: "done", result: output }, { notice: bus.remoteNotice(chat.id, "tool.finished") });
        this.publishFinished(chat.id, call, output);
      }
      const part: MessagePart = { type: "tool-result", toolCallId: call.toolCallId, toolName: call.toolName, output: capForModel(output.output), ...(output.isError ? { isError: true } : {}), ...(output.data !== undefined ? { data: output.data } : {}) };
      return { call, output, part, unrecorded };
    }));
    const results = settled.map((result) => result.part);
    const finished = single && settled[0]!.unrecorded ? settled[0]! : null;
    const messageNotice = bus.remoteNotice(chat.id, "message.committed");
    const stored = (async () => {
      const toolMessage = finished
        ? await Store.finishToolCall(db, { chatId: chat.id, toolCallId: finished.call.toolCallId, messageId: message.id, toolName: finished.call.toolName, input: finished.call.input, result: finished.output },
          { chatId: chat.id, role: "tool", parts: results }, { call: bus.remoteNotice(chat.id, "tool.finished"), message: messageNotice })
        : await Store.appendMessage(db, { chatId: chat.id, role: "tool", parts: results }, { notice: messageNotice });
      if (finished) this.publishFinished(chat.id, finished.call, finished.output);
      bus.publish({ type: "message.committed", chat_id: chat.id, message: Store.messageView(toolMessage) }, { notified: true });
      return toolMessage;
    })();
    // Awaited by the caller before anything else is stored or published (see SettledTools).
    stored.catch(() => {});
    const unstored: Store.Message = { id: 0, chatId: chat.id, role: "tool", parts: results, usage: null, compressed: false, visibility: "both", modelId: null, createdBy: null, createdAt: new Date() };
    return { message: unstored, stored };
  }

  private publishFinished(chatId: string, call: ReturnType<typeof toolCallsOf>[number], output: ToolOutput): void {
    this.options.bus.publish({ type: "tool.finished", chat_id: chatId, tool_call_id: call.toolCallId, tool_name: call.toolName, is_error: output.isError ?? false, output: capForModel(output.output, 4096) }, { notified: true });
  }

  private async runTool(chat: Store.Chat, owner: Actor, call: ReturnType<typeof toolCallsOf>[number], tools: Tool[], signal: AbortSignal, log: Logger, onChatChange: (chat: Store.Chat) => void): Promise<ToolOutput> {
    const tool = tools.find((candidate) => candidate.name === call.toolName);
    if (!tool) return { output: `unknown tool '${call.toolName}'; available: ${tools.map((candidate) => candidate.name).join(", ")}`, isError: true };
    const parsed = tool.parameters.safeParse(call.input);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => `${issue.path.join(".") || "(input)"}: ${issue.message}`).join("; ");
      return { output: `invalid arguments for ${tool.name}: ${issues}. Fix them and call the tool again.`, isError: true };
    }
    if (tool.workspace && !chat.workspaceId) {
      return { output: "this chat has no workspace yet; call list_templates and create_workspace first", isError: true };
    }
    try {
      return await tool.execute(parsed.data, {
        chat, owner, toolCallId: call.toolCallId, idempotencyKey: `${chat.id}:${call.toolCallId}`, signal,
        workspace: () => this.workspaceConnection(chat, owner),
        setWorkspace: async (workspaceId) => {
          const [updated] = await this.options.database.db.update(chats).set({ workspaceId, updatedAt: new Date() }).where(eq(chats.id, chat.id)).returning();
          if (updated) {
            chat = updated;
            onChatChange(updated);
          }
        },
        services: this.options.services,
      });
    } catch (error) {
      if (signal.aborted) return { output: "interrupted by the user", isError: true };
      log.warn({ err: error, tool: tool.name }, "tool failed");
      return { output: `${tool.name} failed: ${error instanceof Error ? error.message : String(error)}`, isError: true };
    }
  }

  /** The chat's workspace connection: made on the first tool that needs it, cached for the chat. */
  private workspaceConnection(chat: Store.Chat, owner: Actor): Promise<AgentConnection> {
    const cached = this.connections.get(chat.id);
    if (cached && cached.workspaceId === chat.workspaceId) {
      return cached.connection.then((connection) => (connection.closed ? this.reconnect(chat, owner) : connection));
    }
    return this.reconnect(chat, owner);
  }

  private reconnect(chat: Store.Chat, owner: Actor): Promise<AgentConnection> {
    const connection = connectToWorkspace(this.options.database.db, this.options.tunnel, owner, chat.workspaceId!);
    this.connections.set(chat.id, { workspaceId: chat.workspaceId!, connection });
    connection.catch(() => this.connections.delete(chat.id));
    return connection;
  }

  private async compact(chatId: string, model: ResolvedModel, context: Store.Message[], signal: AbortSignal): Promise<void> {
    const summary = await summarize(model, toLlmMessages(context), signal);
    if (!summary.text) return;
    const message = await Store.appendMessage(this.options.database.db, {
      chatId, role: "user", parts: [{ type: "text", text: `${SUMMARY_PREFIX}${summary.text}` }], compressed: true, usage: summary.usage, modelId: model.modelId,
    });
    this.options.bus.publish({ type: "message.committed", chat_id: chatId, message: Store.messageView(message) });
  }

  /** Compacts a waiting chat now (the "compact now" action). */
  async compactNow(chatId: string): Promise<boolean> {
    const chat = await Store.get(this.options.database.db, chatId);
    if (!chat) return false;
    const context = await Store.contextMessages(this.options.database.db, chatId);
    if (!worthCompacting(context)) return false;
    const model = await this.options.resolveModel(chat.modelId);
    await this.compact(chatId, model, context, AbortSignal.timeout(10 * 60_000));
    return true;
  }

  /** Ends a turn: the next queued message (if any) starts the next turn; otherwise the chat waits. */
  private async finish(chatId: string, outcome: { status: "waiting" } | { status: "error"; error: string }): Promise<ChatStatus> {
    const { database, bus } = this.options;
    const settled = { workerId: null, leaseExpiresAt: null, interruptRequested: false, lastError: outcome.status === "error" ? outcome.error : null };
    const since = bus.currentId();
    // Usually nothing is queued: one statement ends the turn; the transaction below only runs when a message waits.
    const [ended] = await database.db.update(chats).set({ status: outcome.status, updatedAt: new Date(), ...settled })
      .where(and(eq(chats.id, chatId), outcome.status === "waiting" ? Store.nothingQueued(database.db, chatId) : undefined))
      .returning({ id: chats.id, notice: bus.remoteNotice(chatId, "status") });
    const result = ended ? { status: outcome.status, message: null } : await database.db.transaction(async (transaction) => {
      const [next] = outcome.status === "waiting"
        ? await transaction.select().from(chatQueuedMessages).where(eq(chatQueuedMessages.chatId, chatId)).orderBy(chatQueuedMessages.position, chatQueuedMessages.id).limit(1).for("update", { skipLocked: true })
        : [];
      if (next) {
        await transaction.delete(chatQueuedMessages).where(eq(chatQueuedMessages.id, next.id));
        const message = await Store.appendMessage(transaction, { chatId, role: "user", parts: next.parts as MessagePart[] });
        await Store.setStatus(transaction, chatId, "pending", { workerId: null, leaseExpiresAt: null, interruptRequested: false, lastError: null });
        return { status: "pending" as const, message };
      }
      await Store.setStatus(transaction, chatId, outcome.status, settled);
      return { status: outcome.status, message: null };
    });
    if (result.message) {
      bus.publish({ type: "message.committed", chat_id: chatId, message: Store.messageView(result.message) });
      bus.publish({ type: "queue.updated", chat_id: chatId, queue: await Store.listQueue(database.db, chatId) });
      await database.notify(Store.CHATS_CHANNEL, chatId);
    }
    if (outcome.status === "error") bus.publish({ type: "error", chat_id: chatId, message: outcome.error });
    if (result.status === "pending") bus.publishPending(chatId, since);
    else bus.publish({ type: "status", chat_id: chatId, status: result.status, error: outcome.status === "error" ? outcome.error : null }, { notified: Boolean(ended) });
    return result.status;
  }

  /** The chat's owner: from the cache while the row's digest at the claim (`ownerVersion`) is the one cached. */
  private async ownerOf(chat: Store.Chat, ownerVersion: string | null): Promise<Actor> {
    const cached = this.owners.get(chat.ownerId);
    if (cached && ownerVersion !== null && cached.version === ownerVersion) return { user: cached.user, tokenId: `chat:${chat.id}` };
    const [user] = await this.statements.owner.execute({ ownerId: chat.ownerId });
    if (!user) {
      this.owners.delete(chat.ownerId);
      throw new Error("the chat's owner no longer exists");
    }
    // The row read may be newer than the digest; then the next claim's digest differs and reads again.
    if (ownerVersion !== null) this.owners.set(chat.ownerId, { version: ownerVersion, user });
    return { user, tokenId: `chat:${chat.id}` };
  }
}

type PrerecordedStatus = "running" | "pending_approval";

/**
 * Settled tool calls: their tool message as it will be stored (id 0), and the statement storing it.
 * The caller sends the next model request meanwhile and waits for `stored` before it stores, publishes
 * or ends anything else, so the tool message is durable (and its events out) before the reply's.
 */
interface SettledTools {
  message: Store.Message;
  stored: Promise<Store.Message>;
}

/**
 * The records a new reply's calls get with it: `running` for calls the policy allows, `pending_approval`
 * for those it asks about; denied calls get none (they never run). None when two calls share an id
 * (one statement cannot write a row twice): those take the long way, a statement per record.
 */
function recordsToStart(parts: MessagePart[], policy: ToolPolicy): { toolCallId: string; toolName: string; input: unknown; status: PrerecordedStatus }[] {
  const calls = parts.filter((part) => part.type === "tool-call");
  if (new Set(calls.map((call) => call.toolCallId)).size !== calls.length) return [];
  return calls.flatMap((call) => {
    const decision = decisionFor(policy, call.toolName);
    return decision === "deny" ? [] : [{ toolCallId: call.toolCallId, toolName: call.toolName, input: call.input, status: decision === "ask" ? "pending_approval" as const : "running" as const }];
  });
}

/** The context after appending `message`, as `Store.contextMessages` would read it. */
function withMessage(context: Store.Message[], message: Store.Message): Store.Message[] {
  if (message.compressed) return [message];
  return message.visibility === "user" ? context : [...context, message];
}
