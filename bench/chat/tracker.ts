import { performance } from "node:perf_hooks";
import type { ChatEventBus } from "../../control-plane/src/chats/events.ts";

/** When a chat first reached each status, in performance.now() milliseconds of this process. */
export interface ChatTimes {
  /**
   * Store.create committed the chat (published right after COMMIT, before NOTIFY). Absent when a
   * worker claimed it before the creating call read the insert's answer (see Store.create).
   */
  pending?: number;
  /** A worker claimed it (published right after the claiming UPDATE returned). */
  running?: number;
  /** The turn ended and the chat waits for the user (published after the closing transaction). */
  waiting?: number;
  error?: { at: number; message: string | null };
}

/** The milestones of a tool step, in the order the worker publishes them (each after its statement committed). */
export type StepMilestone = "reply" | "tool.started" | "tool.finished" | "tool.result";

/**
 * Timestamps status changes from the runtime's event bus: the worker publishes them
 * synchronously at the points above, so reading them costs the worker nothing extra
 * and needs no change to it.
 */
export class ChatTracker {
  readonly times = new Map<string, ChatTimes>();
  /** Chats seen committed (`pending`), and chats seen waiting or failed, so far: their difference is the chats in flight. */
  committed = 0;
  settledCount = 0;
  /** While true, also records each chat's tool-step milestones (in `milestones`). */
  traceSteps = false;
  readonly milestones = new Map<string, { milestone: StepMilestone; at: number }[]>();
  readonly #settleWaiters = new Map<string, Set<(times: ChatTimes) => void>>();
  readonly #unsubscribe: () => void;

  constructor(bus: ChatEventBus) {
    this.#unsubscribe = bus.subscribeAll(({ event }) => {
      if (event.type !== "status") {
        if (this.traceSteps) this.#milestone(event);
        return;
      }
      const now = performance.now();
      let times = this.times.get(event.chat_id);
      if (!times) this.times.set(event.chat_id, (times = {}));
      const wasSettled = times.waiting !== undefined || times.error !== undefined;
      const firstSeen = times.pending === undefined && times.running === undefined;
      if (event.status === "pending") {
        if (firstSeen) this.committed++;
        if (times.running === undefined) times.pending ??= now;
      } else if (event.status === "running") {
        // A worker can claim a new chat before its creator reads the insert's answer; Store.create
        // then publishes no `pending`, and the claim is the first sign of the commit.
        if (firstSeen) this.committed++;
        times.running ??= now;
      }
      else if (event.status === "waiting") times.waiting ??= now;
      else if (event.status === "error") times.error ??= { at: now, message: event.error };
      else return;
      if (times.waiting !== undefined || times.error) {
        if (!wasSettled) this.settledCount++;
        for (const resolve of this.#settleWaiters.get(event.chat_id) ?? []) resolve(times);
        this.#settleWaiters.delete(event.chat_id);
      }
    });
  }

  #milestone(event: Parameters<Parameters<ChatEventBus["subscribeAll"]>[0]>[0]["event"]): void {
    let milestone: StepMilestone;
    if (event.type === "message.committed") {
      if (event.message.role === "assistant") milestone = "reply";
      else if (event.message.role === "tool") milestone = "tool.result";
      else return;
    } else if (event.type === "tool.started" || event.type === "tool.finished") milestone = event.type;
    else return;
    let list = this.milestones.get(event.chat_id);
    if (!list) this.milestones.set(event.chat_id, (list = []));
    list.push({ milestone, at: performance.now() });
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
