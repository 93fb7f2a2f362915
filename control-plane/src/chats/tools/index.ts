import { z } from "zod";
import type { LlmTool } from "../../llm/index.ts";
import { agentTools } from "./agent-tools.ts";
import { platformTools } from "./platform-tools.ts";
import type { Tool } from "./tool.ts";
import { workspaceTools } from "./workspace-tools.ts";

export * from "./tool.ts";

export const allTools: Tool[] = [...workspaceTools, ...platformTools, ...agentTools] as Tool[];
export const toolNames = allTools.map((tool) => tool.name);

/** Tools offered to a chat: sub-agents (depth 1) do not get the orchestration tools. */
export function toolsFor(options: { isChild: boolean }): Tool[] {
  return options.isChild ? allTools.filter((tool) => !agentTools.includes(tool as never)) : allTools;
}

const llmToolCache = new WeakMap<Tool, LlmTool>();

/** JSON Schemas for the provider; computed once per tool (they never change at run time). */
export function toLlmTools(tools: Tool[]): LlmTool[] {
  return tools.map((tool) => {
    const cached = llmToolCache.get(tool);
    if (cached) return cached;
    const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.parameters, { io: "input" }) as Record<string, unknown>;
    const converted = { name: tool.name, description: tool.description, inputSchema: schema };
    llmToolCache.set(tool, converted);
    return converted;
  });
}
