import { z } from "zod";
import { defineTool } from "./tool.ts";

export const listTemplates = defineTool({
  name: "list_templates",
  description: "List the workspace templates you can create a workspace from.",
  workspace: false,
  parameters: z.object({ query: z.string().optional(), page: z.number().int().min(1).optional() }),
  async execute(input, context) {
    const all = await context.services.listTemplates(input.query);
    const page = input.page ?? 1;
    const items = all.slice((page - 1) * 50, page * 50);
    return { output: items.length ? items.map((template) => `${template.id}  ${template.name} (${template.kind}): ${template.description}`).join("\n") : "no templates", data: items };
  },
});

export const readTemplate = defineTool({
  name: "read_template",
  description: "Show a template's details and parameters (name, type, default, options, validation).",
  workspace: false,
  parameters: z.object({ template_id: z.string().min(1).describe("template id or name") }),
  async execute(input, context) {
    const template = await context.services.readTemplate(input.template_id);
    return { output: JSON.stringify(template, null, 2), data: template };
  },
});

export const createWorkspace = defineTool({
  name: "create_workspace",
  description: "Create a workspace for this chat from a template and wait until it is ready. Idempotent: if the chat already has a workspace, that one is returned.",
  workspace: false,
  parameters: z.object({
    template_id: z.string().min(1).describe("template id or name"),
    name: z.string().optional().describe("workspace name; generated when omitted"),
    parameters: z.record(z.string(), z.string()).optional(),
  }),
  async execute(input, context) {
    if (context.chat.workspaceId) return { output: `this chat already has workspace ${context.chat.workspaceId}; use it` };
    const name = input.name ?? `chat-${context.chat.id.slice(0, 8)}`;
    const workspace = await context.services.createWorkspace(context.owner, { template: input.template_id, name, parameters: input.parameters }, context.signal);
    await context.setWorkspace(workspace.id);
    return { output: `workspace '${workspace.name}' is ${workspace.status}; workspace tools now run in it`, data: workspace };
  },
});

export const platformTools = [listTemplates, readTemplate, createWorkspace];
