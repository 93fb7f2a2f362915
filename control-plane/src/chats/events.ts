import { sql, type SQL, type SQLWrapper } from "drizzle-orm";
import type { DatabaseHandle } from "../db/index.ts";
import type { ChatEvent } from "./types.ts";

export const CHAT_EVENTS_CHANNEL = "kiln_chat_events";
const BUFFER_SIZE = 2_000;

export interface StampedEvent {
  id: number;
  event: ChatEvent;
}

type Listener = (event: StampedEvent) => void;

/**
 * In-process fan-out of chat events with a short replay buffer per chat, so a client that drops
 * resumes from its last event id. Durable state (messages, status) lives in the database; other
 * replicas learn that a chat changed through NOTIFY and reload it.
 */
export class ChatEventBus {
  private sequence = 0;
  private readonly buffers = new Map<string, StampedEvent[]>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly allListeners = new Set<Listener>();
  private readonly dropTimers = new Map<string, NodeJS.Timeout>();
  private readonly remoteListeners = new Set<(chatId: string) => void>();
  private unlisten: (() => Promise<void>) | null = null;
  /** Identifies this process in NOTIFY payloads so it ignores its own. */
  private readonly origin = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  constructor(private readonly database?: DatabaseHandle) {}

  async start(): Promise<void> {
    if (!this.database) return;
    this.unlisten = await this.database.listen(CHAT_EVENTS_CHANNEL, (payload) => {
      const [origin, chatId] = payload.split(":");
      if (origin === this.origin || !chatId) return;
      for (const listener of this.remoteListeners) listener(chatId);
    });
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    this.unlisten = null;
  }

  /**
   * Publishes an event to this process's subscribers and tells other replicas. `notified`: the
   * statement that made the change durable already sent the NOTIFY (see `remoteNotice`).
   */
  publish(event: ChatEvent, options: { notified?: boolean } = {}): StampedEvent {
    const stamped = { id: ++this.sequence, event };
    let buffer = this.buffers.get(event.chat_id);
    if (!buffer) this.buffers.set(event.chat_id, (buffer = []));
    buffer.push(stamped);
    if (buffer.length > BUFFER_SIZE) buffer.splice(0, buffer.length - BUFFER_SIZE);
    for (const listener of this.listeners.get(event.chat_id) ?? []) listener(stamped);
    for (const listener of this.allListeners) listener(stamped);
    // Deltas stay local; durable changes tell other replicas to reload.
    if (this.database && event.type !== "message.delta" && !options.notified) {
      void this.database.notify(CHAT_EVENTS_CHANNEL, `${this.origin}:${event.chat_id}:${event.type}`).catch(() => {});
    }
    return stamped;
  }

  /**
   * The NOTIFY that `publish` sends to other replicas, as an expression for the RETURNING list of
   * the statement that makes the change durable: it goes out when that commits, without a statement
   * of its own. `chatId` may be a column (one notice per returned row).
   */
  remoteNotice(chatId: string | SQLWrapper, type: ChatEvent["type"]): SQL {
    return sql`pg_notify(${CHAT_EVENTS_CHANNEL}, ${`${this.origin}:`}::text || ${chatId}::text || ${`:${type}`}::text)`;
  }

  /** Events after `afterId` still in the buffer, or null when the buffer no longer reaches back that far. */
  replay(chatId: string, afterId: number): StampedEvent[] | null {
    const buffer = this.buffers.get(chatId) ?? [];
    if (afterId >= this.sequence) return [];
    const first = buffer[0];
    if (!first || first.id > afterId + 1) return afterId === 0 ? buffer.slice() : null;
    return buffer.filter((stamped) => stamped.id > afterId);
  }

  /**
   * Publishes that a chat is `pending`, after the statement that made it so, unless a worker here
   * has claimed it since `since` (`currentId()` read before that statement). A worker can claim the
   * chat as soon as that statement commits, woken by its NOTIFY or polling, and its `running` can be
   * published before the statement's answer is read; `pending` after it would be the last word on a
   * turn that is running.
   */
  publishPending(chatId: string, since: number, options: { notified?: boolean } = {}): void {
    const buffer = this.buffers.get(chatId) ?? [];
    for (let index = buffer.length - 1; index >= 0 && buffer[index]!.id > since; index--) {
      const { event } = buffer[index]!;
      if (event.type === "status" && event.status === "running") return;
    }
    this.publish({ type: "status", chat_id: chatId, status: "pending", error: null }, options);
  }

  /** The id of the newest event published so far. */
  currentId(): number {
    return this.sequence;
  }

  /** Every chat's events (for the per-user status stream). */
  subscribeAll(listener: Listener): () => void {
    this.allListeners.add(listener);
    return () => this.allListeners.delete(listener);
  }

  subscribe(chatId: string, listener: Listener): () => void {
    let set = this.listeners.get(chatId);
    if (!set) this.listeners.set(chatId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(chatId);
    };
  }

  /** Called with a chat id whenever another replica changed that chat. */
  onRemoteChange(listener: (chatId: string) => void): () => void {
    this.remoteListeners.add(listener);
    return () => this.remoteListeners.delete(listener);
  }

  /** Forget a chat's buffer. */
  drop(chatId: string): void {
    this.buffers.delete(chatId);
    const timer = this.dropTimers.get(chatId);
    if (timer) clearTimeout(timer);
    this.dropTimers.delete(chatId);
  }

  /**
   * Forget a chat's buffer once it has been quiet for `idleMs` (a turn ended): clients that reconnect
   * later get a snapshot from the database instead of a replay, and memory stays flat over many chats.
   */
  dropLater(chatId: string, idleMs = 60_000): void {
    const existing = this.dropTimers.get(chatId);
    if (existing) clearTimeout(existing);
    const buffer = this.buffers.get(chatId);
    const lastId = buffer?.at(-1)?.id;
    const timer = setTimeout(() => {
      this.dropTimers.delete(chatId);
      if (this.buffers.get(chatId)?.at(-1)?.id === lastId) this.buffers.delete(chatId);
      else this.dropLater(chatId, idleMs);
    }, idleMs);
    timer.unref();
    this.dropTimers.set(chatId, timer);
  }
}
