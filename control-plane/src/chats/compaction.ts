import { collect, type LlmMessage } from "../llm/index.ts";
import type { ResolvedModel } from "./worker.ts";
import type { Message } from "./store.ts";
import type { Usage } from "./types.ts";

export const COMPACTION_SYSTEM = "You summarize a coding agent's conversation so that the agent can continue the work from the summary alone.";

export const COMPACTION_PROMPT = `Summarize the conversation so far for your own future reference; the earlier messages will be removed from your context.
Include, with exact file paths, commands and identifiers:
1. The user's goal and any constraints or preferences they stated.
2. Key decisions made and why.
3. Files read, created or changed, and commands run (with their outcome).
4. Errors met and how they were fixed.
5. What is done, what is in progress, and what remains.
6. The immediate next step.
Reply with the summary only.`;

export const SUMMARY_PREFIX = "Summary of the conversation so far (earlier messages were compacted):\n\n";

/** Context in use after a step: everything the provider read plus what it wrote. */
export function contextTokens(usage: Usage): number {
  return usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens + usage.outputTokens;
}

export function overThreshold(model: ResolvedModel, usage: Usage | null): boolean {
  if (!usage || model.compactionThreshold >= 100) return false;
  return contextTokens(usage) >= (model.compactionThreshold / 100) * model.contextWindow;
}

/**
 * Whether compacting would shrink anything: a context that is only a summary plus a couple of
 * messages is left alone, which is what stops a summary that is itself large from looping.
 */
export function worthCompacting(context: Message[]): boolean {
  const afterSummary = context[0]?.compressed ? context.length - 1 : context.length;
  return afterSummary >= 3;
}

export async function summarize(model: ResolvedModel, conversation: LlmMessage[], signal: AbortSignal): Promise<{ text: string; usage: Usage }> {
  const messages: LlmMessage[] = [...conversation];
  const last = messages.at(-1);
  const request = { type: "text" as const, text: COMPACTION_PROMPT };
  if (last?.role === "user") last.content = [...last.content, request];
  else messages.push({ role: "user", content: [request] });
  const response = await collect(model.provider.stream({ model: model.model, system: COMPACTION_SYSTEM, messages, maxOutputTokens: Math.min(model.maxOutputTokens, 8192), signal }));
  return { text: response.text.trim(), usage: response.finish.usage };
}
