/** What bench/chat.ts and its child process (peer.ts) say to each other over IPC. */
import { performance } from "node:perf_hooks";

/** How the fake model answers one chat; carried in the chat's prompt so the fake needs no other state. */
export interface ChatScript {
  key: string;
  /** Artificial latency of every model call, spread over its frames. */
  latencyMs: number;
  /**
   * When set, each model call's latency is drawn uniformly from [latencyMs, latencyMaxMs]
   * instead (deterministically from the chat's key and the call's index, so reruns draw alike).
   */
  latencyMaxMs?: number;
  /** The first `toolCalls` model calls each call list_templates; the one after answers in text (0: a one-step text chat). */
  toolCalls: number;
  /** The first model call sends its first frame, then waits for a `release` command before the rest. */
  hold?: boolean;
}

export interface CreatedChat {
  key: string;
  id: string;
  /** Wall time of the POST as the client saw it. */
  postMs: number;
}

/** One model call as the fake served it: request arrived → response ended, in Unix epoch milliseconds (sub-ms precision), comparable across processes. */
export interface ModelCall {
  startMs: number;
  endMs: number;
}

/** performance.timeOrigin + performance.now(): a wall clock with sub-millisecond precision that both processes share. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export type PeerCommand =
  /** `ratePerSecond`: POST n starts no earlier than n / ratePerSecond s after the first (still at most `inFlight` at once). */
  | { type: "create"; url: string; token: string; chats: ChatScript[]; inFlight: number; ratePerSecond?: number }
  /** Hands over (and forgets) the model-call timings recorded so far. */
  | { type: "collect" }
  | { type: "cpu" }
  /** How many model calls wait for `release` now. */
  | { type: "held" }
  /** Lets every held model call (and any later one) go on. */
  | { type: "release" };

export type PeerReply =
  | { type: "ready"; baseUrl: string }
  | { type: "created"; chats: CreatedChat[]; failures: string[]; wallMs: number }
  /** `calls`: per chat key, the model calls the fake served, in call order. */
  | { type: "collected"; calls: Record<string, ModelCall[]>; cpuMs: number }
  /** CPU time (user + system) the peer has used since it started. */
  | { type: "cpu"; cpuMs: number }
  | { type: "held"; count: number }
  | { type: "released" };

const MARKER = /\[bench key=(\S+) latency=(\d+)(?:-(\d+))? tools=(\d+) hold=([01])\]/;

export function promptFor(script: ChatScript): string {
  const latency = script.latencyMaxMs === undefined ? `${script.latencyMs}` : `${script.latencyMs}-${script.latencyMaxMs}`;
  return `[bench key=${script.key} latency=${latency} tools=${script.toolCalls} hold=${script.hold ? 1 : 0}] say hello`;
}

/** The script in a text that contains a prompt made by promptFor, or null. */
export function scriptIn(text: string): ChatScript | null {
  const match = MARKER.exec(text);
  if (!match) return null;
  return {
    key: match[1] as string,
    latencyMs: Number(match[2]),
    ...(match[3] === undefined ? {} : { latencyMaxMs: Number(match[3]) }),
    toolCalls: Number(match[4]),
    hold: match[5] === "1",
  };
}
