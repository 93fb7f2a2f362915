import { z } from "zod";
import { defineTool } from "./tool.ts";

export const spawnAgent = defineTool({
  name: "spawn_agent",
  description: "Start a sub-agent (a child chat) on a self-contained task. It shares this chat's workspace. Sub-agents cannot spawn further agents.",
  workspace: false,
  parameters: z.object({ prompt: z.string().min(1), title: z.string().optional(), model: z.string().optional() }),
  async execute(input, context) {
    const child = await context.services.spawnChild(context.chat, input);
    return { output: `spawned sub-agent ${child.id}; use wait_agent to collect its result`, data: { chat_id: child.id } };
  },
});

export const waitAgent = defineTool({
  name: "wait_agent",
  description: "Wait for a sub-agent to finish its turn and return its last message. A timeout does not stop the sub-agent.",
  workspace: false,
  parameters: z.object({ chat_id: z.string().min(1), timeout_seconds: z.number().positive().max(3600).optional() }),
  async execute(input, context) {
    const result = await context.services.waitChild(context.chat, input.chat_id, (input.timeout_seconds ?? 300) * 1000, context.signal);
    const head = result.done ? `sub-agent finished (${result.status})` : `sub-agent still ${result.status} after the timeout`;
    return { output: `${head}\n${result.lastMessage}`, data: result };
  },
});

export const messageAgent = defineTool({
  name: "message_agent",
  description: "Send a message to a sub-agent; queued if it is busy unless interrupt is set.",
  workspace: false,
  parameters: z.object({ chat_id: z.string().min(1), message: z.string().min(1), interrupt: z.boolean().optional() }),
  async execute(input, context) {
    const result = await context.services.messageChild(context.chat, input.chat_id, input.message, input.interrupt ?? false);
    return { output: result.queued ? "message queued; the sub-agent is busy" : "message delivered" };
  },
});

export const closeAgent = defineTool({
  name: "close_agent",
  description: "Stop a sub-agent and close its chat.",
  workspace: false,
  parameters: z.object({ chat_id: z.string().min(1) }),
  async execute(input, context) {
    await context.services.closeChild(context.chat, input.chat_id);
    return { output: `sub-agent ${input.chat_id} closed` };
  },
});

export const agentTools = [spawnAgent, waitAgent, messageAgent, closeAgent];
