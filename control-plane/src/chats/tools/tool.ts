import { z } from "zod";
import type { AgentConnection } from "../../api/context.ts";
import type { Actor } from "../../auth/index.ts";
import type { Chat } from "../store.ts";

/** What the model gets back (capped) and what clients get (structured). */
export interface ToolOutput {
  output: string;
  isError?: boolean;
  data?: unknown;
}

export interface ToolContext {
  chat: Chat;
  owner: Actor;
  toolCallId: string;
  /** Stable across a resumed turn, so side effects run once. */
  idempotencyKey: string;
  signal: AbortSignal;
  /** The chat's workspace agent: connected on first use, cached for the chat. */
  workspace(): Promise<AgentConnection>;
  /** Attaches a workspace to the chat (create_workspace). */
  setWorkspace(workspaceId: string): Promise<void>;
  services: ToolServices;
}

/** Control-plane operations platform and orchestration tools need; provided by the chat worker. */
export interface ToolServices {
  listTemplates(query?: string): Promise<{ id: string; name: string; description: string; kind: string }[]>;
  readTemplate(reference: string): Promise<unknown>;
  createWorkspace(owner: Actor, input: { template: string; name: string; parameters?: Record<string, string> }, signal: AbortSignal): Promise<{ id: string; name: string; status: string }>;
  spawnChild(parent: Chat, input: { prompt: string; title?: string; model?: string }): Promise<Chat>;
  waitChild(parent: Chat, childId: string, timeoutMs: number, signal: AbortSignal): Promise<{ status: string; lastMessage: string; done: boolean }>;
  messageChild(parent: Chat, childId: string, message: string, interrupt: boolean): Promise<{ queued: boolean }>;
  closeChild(parent: Chat, childId: string): Promise<void>;
}

export interface Tool<Input = unknown> {
  name: string;
  description: string;
  parameters: z.ZodType<Input>;
  /** Needs the workspace agent. */
  workspace: boolean;
  execute(input: Input, context: ToolContext): Promise<ToolOutput>;
}

export function defineTool<Schema extends z.ZodType>(tool: Omit<Tool<z.infer<Schema>>, "parameters"> & { parameters: Schema }): Tool<z.infer<Schema>> {
  return tool as Tool<z.infer<Schema>>;
}

/** Output handed to the model is capped; the full result stays available to clients. */
export const MODEL_OUTPUT_LIMIT = 32 * 1024;

export function capForModel(text: string, limit = MODEL_OUTPUT_LIMIT): string {
  const bytes = Buffer.byteLength(text);
  if (bytes <= limit) return text;
  const half = Math.floor(limit / 2) - 64;
  const buffer = Buffer.from(text);
  return `${buffer.subarray(0, half).toString()}\n… [${bytes - 2 * half} bytes omitted] …\n${buffer.subarray(bytes - half).toString()}`;
}
