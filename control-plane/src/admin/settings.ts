import { eq } from "drizzle-orm";
import { z } from "zod";
import { requireAdmin, type Actor } from "../auth/index.ts";
import type { Database, Executor } from "../db/index.ts";
import { settings } from "../db/schema.ts";
import { ValidationError } from "../errors.ts";

const SYSTEM_PROMPT_KEY = "system_prompt";
const TOOL_POLICY_KEY = "tool_policy";

export const DEFAULT_SYSTEM_PROMPT = `You are Kiln, an AI coding agent working in a remote development workspace on behalf of a user.

How you work:
- Understand before you change. Read the relevant code, configuration and documentation first, and follow the conventions you find there: style, structure, libraries, test layout.
- Work in small, verifiable steps. After a change, run the project's build, type checks and tests where they exist, and fix what you broke before moving on.
- Make the change the user asked for, completely, and nothing more. Do not refactor unrelated code, add dependencies or rename things without a reason the user would agree with.
- Prefer editing existing files over creating new ones. Never leave placeholders, stubs or TODOs in place of the real work.
- Commands run non-interactively: pass the flags that avoid prompts, and run long-lived processes (servers, watchers) in the background, checking their output rather than waiting on them.
- Be careful with anything destructive or hard to undo (deleting data, force-pushing, rewriting history, touching credentials or production systems): ask first.
- Never print, log or commit secrets.
- When the request is ambiguous or you are blocked, say what you found and ask a precise question instead of guessing.

How you communicate:
- Be concise and concrete. Reference files as path:line.
- When you finish, summarise what you changed, how you verified it, and anything left for the user to decide.`;

/** The system prompt chats start with: the admin's, else the built-in one. */
export async function getSystemPrompt(db: Database): Promise<string> {
  const value = await read(db, SYSTEM_PROMPT_KEY);
  return typeof value === "string" && value.trim() !== "" ? value : DEFAULT_SYSTEM_PROMPT;
}

export const SystemPrompt = z.object({
  system_prompt: z.string(),
  is_default: z.boolean().describe("true while the built-in prompt is in use"),
});
export type SystemPrompt = z.infer<typeof SystemPrompt>;

export const SetSystemPromptInput = z.strictObject({
  system_prompt: z.string().max(100_000).nullable().describe("null or blank restores the built-in prompt"),
});
export type SetSystemPromptInput = z.infer<typeof SetSystemPromptInput>;

/** The prompt as admins see it, with whether it is the built-in one. */
export async function readSystemPrompt(db: Database, actor: Actor): Promise<SystemPrompt> {
  requireAdmin(actor);
  const value = await read(db, SYSTEM_PROMPT_KEY);
  const custom = typeof value === "string" && value.trim() !== "";
  return { system_prompt: custom ? value : DEFAULT_SYSTEM_PROMPT, is_default: !custom };
}

/** Replaces the system prompt for new turns; null or blank text restores the built-in one. */
export async function setSystemPrompt(db: Database, actor: Actor, text: string | null): Promise<SystemPrompt> {
  requireAdmin(actor);
  if (text === null || text.trim() === "") await db.delete(settings).where(eq(settings.key, SYSTEM_PROMPT_KEY));
  else await write(db, SYSTEM_PROMPT_KEY, text);
  return readSystemPrompt(db, actor);
}

export const ToolDecision = z.enum(["allow", "ask", "deny"]);
export type ToolDecision = z.infer<typeof ToolDecision>;

/** Per-tool decisions; `*` sets the decision for every tool not named. Tools not covered are allowed. */
export const ToolPolicy = z.record(z.string().regex(/^(\*|[A-Za-z0-9_.-]{1,64})$/, "a tool name or '*'"), ToolDecision);
export type ToolPolicy = z.infer<typeof ToolPolicy>;

/** The policy the agent loop applies; `{}` (everything allowed) until an admin sets one. */
export async function getToolPolicy(db: Database): Promise<ToolPolicy> {
  const parsed = ToolPolicy.safeParse(await read(db, TOOL_POLICY_KEY));
  return parsed.success ? parsed.data : {};
}

export async function readToolPolicy(db: Database, actor: Actor): Promise<ToolPolicy> {
  requireAdmin(actor);
  return getToolPolicy(db);
}

/** What the policy says for one tool call. */
export function decisionFor(policy: ToolPolicy, toolName: string): ToolDecision {
  return policy[toolName] ?? policy["*"] ?? "allow";
}

/** Replaces the whole policy. With `knownTools`, names that are not tools (typos) are refused. */
export async function setToolPolicy(db: Database, actor: Actor, policy: ToolPolicy, options: { knownTools?: readonly string[] } = {}): Promise<ToolPolicy> {
  requireAdmin(actor);
  const parsed = ToolPolicy.safeParse(policy);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = ["policy", ...issue.path.map(String)].join(".");
    throw new ValidationError(`${field}: ${issue.message}`, { field, reason: issue.message });
  }
  const { knownTools } = options;
  if (knownTools) {
    const unknown = Object.keys(parsed.data).find((name) => name !== "*" && !knownTools.includes(name));
    if (unknown !== undefined) {
      const reason = `no tool named '${unknown}'; tools: ${knownTools.join(", ")}`;
      throw new ValidationError(`policy.${unknown}: ${reason}`, { field: `policy.${unknown}`, reason });
    }
  }
  await write(db, TOOL_POLICY_KEY, parsed.data);
  return parsed.data;
}

async function read(executor: Executor, key: string): Promise<unknown> {
  const [row] = await executor.select({ value: settings.value }).from(settings).where(eq(settings.key, key)).limit(1);
  return row?.value;
}

async function write(executor: Executor, key: string, value: unknown): Promise<void> {
  await executor.insert(settings).values({ key, value })
    .onConflictDoUpdate({ target: settings.key, set: { value, updatedAt: new Date() } });
}
