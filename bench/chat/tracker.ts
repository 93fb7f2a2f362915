import { performance } from "node:perf_hooks";
import type { ChatEventBus } from "../../control-plane/src/chats/events.ts";

/** When a chat first reached each status, in performance.now() milliseconds of this process. */
export interface ChatTimes {
  /** Store.create committed the chat (published right after COMMIT, before NOTIFY). */
  pending?: number;
  /** A worker claimed it (published right after the claiming UPDATE returned). */
  running?: number;
  /** The turn ended and the chat waits for the user (published after the closing transaction). */
  waiting?: number;
  error?: { at: number; message: string | null };
}

/**
 * Timestamps status changes from the runtime's event bus: the worker publishes them
 * synchronously at the points above, so reading them costs the worker nothing extra
 * and needs no change to it.
 */
export class ChatTracker {
  readonly times = new Map<string, ChatTimes>();
  readonly #settleWaiters = new Map<string, Set<(times: ChatTimes) => void>>();
  readonly #unsubscribe: () => void;

  constructor(bus: ChatEventBus) {
    this.#unsubscribe = bus.subscribeAll(({ event }) => {
      if (event.type !== "status") return;
      const now = performance.now();
      let times = this.times.get(event.chat_id);
      if (!times) this.times.set(event.chat_id, (times = {}));
      if (event.status === "pending") times.pending ??= now;
      else if (event.status === "running") times.running ??= now;
      else if (event.status === "waiting") times.waiting ??= now;
      else if (event.status === "error") times.error ??= { at: now, message: event.error };
      else return;
      if (times.waiting !== undefined || times.error) {
        for (const resolve of this.#settleWaiters.get(event.chat_id) ?? []) resolve(times);
        this.#settleWaiters.delete(event.chat_id);
      }
    });
  }

  /** Resolves once the chat is waiting or failed (at once if it already is). */
  settled(chatId: string, timeoutMs: number): Promise<ChatTimes> {
    const times = this.times.get(chatId);
    if (times && (times.waiting !== undefined || times.error)) return Promise.resolve(times);
    return new Promise<ChatTimes>((resolve, reject) => {
      let waiters = this.#settleWaiters.get(chatId);
      if (!waiters) this.#settleWaiters.set(chatId, (waiters = new Set()));
      const done = (settledTimes: ChatTimes) => {
        clearTimeout(timer);
        resolve(settledTimes);
      };
      const timer = setTimeout(() => {
        waiters.delete(done);
        reject(new Error(`chat ${chatId} did not finish its turn within ${timeoutMs} ms (times: ${JSON.stringify(this.times.get(chatId) ?? {})})`));
      }, timeoutMs);
      waiters.add(done);
    });
  }

  close(): void {
    this.#unsubscribe();
  }
}
