import type { LlmMessage, LlmTool } from "../types.ts";

/** Tools and a finished tool round-trip, shared by the request-shape tests of every provider. */
export const tools: LlmTool[] = [
  { name: "list_dir", description: "List a directory", inputSchema: { type: "object", properties: { path: { type: "string" } }, required: ["path"] } },
  { name: "read_file", description: "Read a file", inputSchema: { type: "object", properties: { path: { type: "string" } }, required: ["path"] } },
];

/** Two parallel tool calls answered by two separate tool messages, then a new user message. */
export const toolConversation: LlmMessage[] = [
  { role: "user", content: [{ type: "text", text: "What is in src?" }] },
  {
    role: "assistant",
    content: [
      { type: "reasoning", text: "I should list the directory.", signature: "sig-1" },
      { type: "text", text: "Let me look." },
      { type: "tool-call", toolCallId: "call_1", toolName: "list_dir", input: { path: "src" } },
      { type: "tool-call", toolCallId: "call_2", toolName: "read_file", input: { path: "src/missing.ts" } },
    ],
  },
  { role: "tool", content: [{ type: "tool-result", toolCallId: "call_1", toolName: "list_dir", output: "main.ts\nutil.ts" }] },
  { role: "tool", content: [{ type: "tool-result", toolCallId: "call_2", toolName: "read_file", output: "ENOENT: no such file", isError: true }] },
  { role: "user", content: [{ type: "text", text: "Now summarize." }] },
];
