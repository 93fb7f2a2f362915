import { z } from "zod";
import type { AgentConnection } from "../../api/context.ts";
import { defineTool, type ToolContext, type ToolOutput } from "./tool.ts";

const CHAT_HEADER = "x-kiln-chat-id";

async function call<T>(connection: AgentConnection, context: ToolContext, path: string, init: { method?: string; body?: unknown } = {}): Promise<{ ok: true; value: T } | { ok: false; output: ToolOutput }> {
  const response = await connection.fetch(path, {
    method: init.method ?? "GET",
    headers: { [CHAT_HEADER]: context.chat.rootChatId ?? context.chat.id, ...(init.body !== undefined ? { "content-type": "application/json" } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    signal: context.signal,
  });
  const text = await response.text();
  let body: (T & { error?: { code: string; message: string; details?: unknown } }) | null = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // reported below
  }
  if (response.ok && body === null) {
    return { ok: false, output: { output: `error: the workspace agent sent an unreadable response (HTTP ${response.status}): ${text.slice(0, 200)}`, isError: true } };
  }
  if (!response.ok) {
    const error = body?.error;
    return { ok: false, output: { output: `error (${error?.code ?? response.status}): ${error?.message ?? "request failed"}${error?.details ? `\ndetails: ${JSON.stringify(error.details)}` : ""}`, isError: true, data: body } };
  }
  return { ok: true, value: body as T };
}

interface ProcessResult {
  process_id: string;
  command: string;
  running: boolean;
  exit_code: number | null;
  signal: string | null;
  output: string;
  truncated: boolean;
  omitted_bytes: number;
  wall_duration_ms: number;
  timed_out: boolean;
}

function describeProcess(result: ProcessResult): string {
  const status = result.running ? `still running (process_id ${result.process_id})` : result.timed_out ? "timed out and was killed" : result.signal ? `killed by ${result.signal}` : `exit code ${result.exit_code}`;
  return `${status}; ${result.wall_duration_ms} ms${result.truncated ? `; ${result.omitted_bytes} bytes of output omitted` : ""}\n${result.output}`;
}

export const readFile = defineTool({
  name: "read_file",
  description: "Read a text file in the workspace. Returns numbered lines (like cat -n). Use offset/limit to page through long files.",
  workspace: true,
  parameters: z.object({
    path: z.string().min(1).describe("absolute path, or relative to the workspace directory"),
    offset: z.number().int().min(1).optional().describe("1-based line to start at"),
    limit: z.number().int().min(1).max(2000).optional().describe("lines to read (default 2000)"),
  }),
  async execute(input, context) {
    const query = new URLSearchParams({ path: input.path });
    if (input.offset) query.set("offset", String(input.offset));
    if (input.limit) query.set("limit", String(input.limit));
    const result = await call<{ content: string; total_lines: number; lines_read: number; offset: number; truncated: boolean; truncation_reason?: string; next_offset?: number; file_size: number }>(await context.workspace(), context, `/v1/files/read?${query}`);
    if (!result.ok) return result.output;
    const value = result.value;
    const note = value.truncated ? `\n[truncated (${value.truncation_reason}); continue with offset ${value.next_offset}]` : "";
    return { output: `${value.content}${note}\n[${value.lines_read} of ${value.total_lines} lines from line ${value.offset}; ${value.file_size} bytes]`, data: { ...value, content: undefined } };
  },
});

export const writeFile = defineTool({
  name: "write_file",
  description: "Create or overwrite a file in the workspace with the given content (atomic; creates parent directories; keeps the file's mode).",
  workspace: true,
  parameters: z.object({ path: z.string().min(1), content: z.string() }),
  async execute(input, context) {
    const result = await call<{ path: string; bytes_written: number; created: boolean }>(await context.workspace(), context, "/v1/files/write", { method: "POST", body: input });
    if (!result.ok) return result.output;
    return { output: `${result.value.created ? "created" : "wrote"} ${result.value.path} (${result.value.bytes_written} bytes)`, data: result.value };
  },
});

export const editFiles = defineTool({
  name: "edit_files",
  description: "Replace exact text in one or more files. Every edit is checked before any file is written; old_text must match exactly once unless replace_all is set. Returns a unified diff per file.",
  workspace: true,
  parameters: z.object({
    edits: z.array(z.object({
      path: z.string().min(1),
      old_text: z.string().min(1),
      new_text: z.string(),
      replace_all: z.boolean().optional(),
    })).min(1),
  }),
  async execute(input, context) {
    const result = await call<{ files: { path: string; diff: string; replacements: number }[] }>(await context.workspace(), context, "/v1/files/edit", { method: "POST", body: input });
    if (!result.ok) return result.output;
    return { output: result.value.files.map((file) => file.diff).join("\n"), data: result.value };
  },
});

export const execute = defineTool({
  name: "execute",
  description: "Run a shell command (sh -c) in the workspace. Foreground commands time out after `timeout` seconds (default 10, max 14400); set run_in_background for servers and long jobs, then use process_output.",
  workspace: true,
  parameters: z.object({
    command: z.string().min(1),
    timeout: z.number().positive().max(14_400).optional().describe("seconds"),
    workdir: z.string().optional(),
    run_in_background: z.boolean().optional(),
  }),
  async execute(input, context) {
    const result = await call<ProcessResult>(await context.workspace(), context, "/v1/processes", {
      method: "POST",
      body: {
        command: input.command, workdir: input.workdir, background: input.run_in_background ?? false,
        timeout_ms: input.timeout ? Math.round(input.timeout * 1000) : input.run_in_background ? undefined : 10_000,
        client_token: context.idempotencyKey,
      },
    });
    if (!result.ok) return result.output;
    const value = result.value;
    if (input.run_in_background) return { output: `started in the background: process_id ${value.process_id}`, data: { background_process_id: value.process_id } };
    return {
      output: describeProcess(value),
      isError: value.exit_code !== 0,
      data: { exit_code: value.exit_code, wall_duration_ms: value.wall_duration_ms, truncated: value.truncated, timed_out: value.timed_out, output: value.output },
    };
  },
});

export const processOutput = defineTool({
  name: "process_output",
  description: "Read a process's output (first and last 16 KiB); optionally wait up to wait_timeout seconds for it to exit.",
  workspace: true,
  parameters: z.object({ process_id: z.string().min(1), wait_timeout: z.number().min(0).max(300).optional().describe("seconds") }),
  async execute(input, context) {
    const wait = input.wait_timeout ? `?wait_ms=${Math.round(input.wait_timeout * 1000)}` : "";
    const result = await call<ProcessResult>(await context.workspace(), context, `/v1/processes/${encodeURIComponent(input.process_id)}/output${wait}`);
    if (!result.ok) return result.output;
    return { output: describeProcess(result.value), data: { running: result.value.running, exit_code: result.value.exit_code } };
  },
});

export const processList = defineTool({
  name: "process_list",
  description: "List the processes this chat started in the workspace.",
  workspace: true,
  parameters: z.object({}),
  async execute(_input, context) {
    const result = await call<{ processes: Omit<ProcessResult, "output">[] }>(await context.workspace(), context, "/v1/processes");
    if (!result.ok) return result.output;
    const lines = result.value.processes.map((process) => `${process.process_id}  ${process.running ? "running" : `exit ${process.exit_code ?? process.signal}`}  ${process.command}`);
    return { output: lines.length ? lines.join("\n") : "no processes", data: result.value };
  },
});

export const processSignal = defineTool({
  name: "process_signal",
  description: "Stop a process: terminate (SIGTERM) or kill (SIGKILL).",
  workspace: true,
  parameters: z.object({ process_id: z.string().min(1), signal: z.enum(["terminate", "kill"]) }),
  async execute(input, context) {
    const result = await call<ProcessResult>(await context.workspace(), context, `/v1/processes/${encodeURIComponent(input.process_id)}/signal`, { method: "POST", body: { signal: input.signal } });
    if (!result.ok) return result.output;
    return { output: `sent ${input.signal}; ${describeProcess(result.value)}` };
  },
});

export const workspaceTools = [readFile, writeFile, editFiles, execute, processOutput, processList, processSignal];
