import type { Command } from "commander";
import { ApiError, unwrap, type KilnClient, type Schemas } from "../client/index.ts";
import { info, printJson, printTable } from "./output.ts";
import { readEvents } from "./sse.ts";

type Session = () => Promise<{ client: KilnClient; url: string; token: string }>;

const dim = (text: string) => (process.stderr.isTTY ? `\x1b[2m${text}\x1b[0m` : text);

function summarizeInput(input: unknown): string {
  const text = JSON.stringify(input);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

/**
 * Follows a chat's event stream, printing the agent's text to stdout and tool calls to stderr,
 * until the chat waits (exit 0), fails (1) or needs an approval (2). Reconnects with Last-Event-ID.
 */
export async function followChat(url: string, token: string, chatId: string): Promise<number> {
  let lastEventId: string | null = null;
  let afterMessage = 0;
  let streamedSinceCommit = false;
  // A tool call is printed once, from its event or from the stored message, whichever comes first: a
  // stream opened after the turn got going sees only the stored messages in its snapshot.
  const announced = new Set<string>();
  const reported = new Set<string>();
  const announce = (id: string, name: string, input: unknown) => {
    if (announced.has(id)) return;
    announced.add(id);
    info(dim(`▶ ${name} ${summarizeInput(input)}`));
  };
  const report = (id: string, name: string, isError: boolean, output: string) => {
    if (reported.has(id)) return;
    reported.add(id);
    info(dim(`${isError ? "✗" : "✓"} ${name}: ${output.split("\n").slice(0, 3).join(" ⏎ ").slice(0, 200)}`));
  };
  for (let attempt = 0; attempt < 30; attempt++) {
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
    if (lastEventId) headers["last-event-id"] = lastEventId;
    let response: Response;
    try {
      response = await fetch(`${url}/api/v1/chats/${chatId}/stream?after_message=${afterMessage}`, { headers });
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, "stream_failed", `could not follow the chat: HTTP ${response.status}`);
    const printMessage = (message: Schemas["ChatMessage"]) => {
      afterMessage = Math.max(afterMessage, message.id);
      const parts = message.parts as Record<string, unknown>[];
      if (message.role === "tool") {
        for (const part of parts) {
          if (part.type === "tool-result") report(String(part.toolCallId), String(part.toolName), part.isError === true, String(part.output));
        }
        return;
      }
      if (message.role !== "assistant") return;
      if (!streamedSinceCommit) {
        const text = message.parts.filter((part) => part.type === "text").map((part) => String((part as { text?: string }).text ?? "")).join("");
        if (text) process.stdout.write(text);
      }
      if (message.parts.some((part) => part.type === "text")) process.stdout.write("\n");
      streamedSinceCommit = false;
      for (const part of parts) {
        if (part.type === "tool-call") announce(String(part.toolCallId), String(part.toolName), part.input);
      }
    };
    try {
      for await (const { event, data, id } of readEvents(response)) {
        if (id) lastEventId = id;
        const payload = JSON.parse(data);
        switch (event) {
          case "snapshot": {
            for (const message of payload.messages as Schemas["ChatMessage"][]) {
              if (message.role === "user") afterMessage = Math.max(afterMessage, message.id);
              else printMessage(message);
            }
            // The chat was made pending before this stream opened, so any settled status means the turn ended.
            const code = exitFor(chatId, payload.chat.status as string, payload.chat.last_error);
            if (code !== null) return code;
            break;
          }
          case "message.delta":
            streamedSinceCommit = true;
            if (payload.part === "text") process.stdout.write(payload.delta);
            else process.stderr.write(dim(payload.delta));
            break;
          case "message.committed":
            printMessage(payload.message);
            break;
          case "tool.started":
            announce(payload.tool_call_id, payload.tool_name, payload.input);
            break;
          case "tool.finished":
            report(payload.tool_call_id, payload.tool_name, payload.is_error, String(payload.output));
            break;
          case "approval.required":
            info(`? ${payload.tool_name} ${summarizeInput(payload.input)} needs approval: kiln chats approve ${chatId} ${payload.tool_call_id} (or --deny)`);
            break;
          case "retry":
            info(dim(`provider error, retrying in ${payload.delay_ms} ms: ${payload.message}`));
            break;
          case "status": {
            const code = exitFor(chatId, payload.status, payload.error);
            if (code !== null) return code;
            break;
          }
        }
      }
    } catch {
      // dropped: reconnect and resume from the last event id
    }
  }
  throw new Error("lost the chat stream too many times");
}

function exitFor(chatId: string, status: string, error: string | null): number | null {
  if (status === "waiting") return 0;
  if (status === "error") {
    info(`error: ${error ?? "the chat failed"}`);
    return 1;
  }
  if (status === "requires_action") {
    info(`the agent's tool call needs approval: kiln chats approve ${chatId} (or --deny)`);
    return 2;
  }
  return null;
}

/** `kiln chat` and `kiln chats …`. */
export function registerChatCommands(program: Command, session: Session): void {
  program.command("chat").description("Ask the agent; streams its reply and tool calls until it waits")
    .argument("<prompt>", "what to ask")
    .option("-w, --workspace <workspace>", "workspace the agent works in")
    .option("-m, --model <model>", "model name or id (default: the deployment's default)")
    .action(async (prompt: string, flags: { workspace?: string; model?: string }) => {
      const { client, url, token } = await session();
      const chat = unwrap(await client.POST("/api/v1/chats", { body: { prompt, workspace: flags.workspace, model: flags.model } }));
      info(dim(`chat ${chat.id}`));
      process.exitCode = await followChat(url, token, chat.id);
    });

  const chats = program.command("chats").description("Agent chats");
  chats.command("list").description("Your chats").option("-o, --output <format>", "table or json", "table").action(async (flags: { output: string }) => {
    const { client } = await session();
    const { chats: rows } = unwrap(await client.GET("/api/v1/chats"));
    if (flags.output === "json") return printJson(rows);
    printTable(rows.map((chat) => ({ id: chat.id, status: chat.status, title: chat.title, updated: chat.updated_at })), ["id", "status", "title", "updated"]);
  });

  chats.command("show").description("Print a chat's transcript").argument("<chat>", "chat id").option("-o, --output <format>", "table or json", "table").action(async (chatId: string, flags: { output: string }) => {
    const { client } = await session();
    const { chat } = unwrap(await client.GET("/api/v1/chats/{chat}", { params: { path: { chat: chatId } } }));
    const { messages } = unwrap(await client.GET("/api/v1/chats/{chat}/messages", { params: { path: { chat: chatId }, query: { limit: 1000 } } }));
    if (flags.output === "json") return printJson({ chat, messages });
    info(`${chat.title} (${chat.status})`);
    for (const message of messages) {
      for (const part of message.parts as Record<string, unknown>[]) {
        if (part.type === "text") process.stdout.write(`${message.compressed ? "[summary] " : ""}${message.role}: ${String(part.text)}\n`);
        if (part.type === "tool-call") process.stdout.write(`${message.role}: ▶ ${String(part.toolName)} ${summarizeInput(part.input)}\n`);
        if (part.type === "tool-result") process.stdout.write(`tool: ${part.isError ? "✗" : "✓"} ${String(part.toolName)}: ${String(part.output).split("\n")[0]}\n`);
      }
    }
  });

  chats.command("send").description("Send a message (queued while the agent works)").argument("<chat>", "chat id").argument("<message>", "the message")
    .option("--interrupt", "stop the running turn and deliver this next")
    .option("--no-follow", "return without streaming the reply")
    .action(async (chatId: string, message: string, flags: { interrupt?: boolean; follow: boolean }) => {
      const { client, url, token } = await session();
      const result = unwrap(await client.POST("/api/v1/chats/{chat}/messages", { params: { path: { chat: chatId } }, body: { content: message, interrupt: flags.interrupt } }));
      if (result.queued) info(`queued (position ${result.queue.length})`);
      if (flags.follow && !result.queued) process.exitCode = await followChat(url, token, chatId);
    });

  chats.command("interrupt").description("Stop the running turn").argument("<chat>", "chat id").action(async (chatId: string) => {
    const { client } = await session();
    unwrap(await client.POST("/api/v1/chats/{chat}/interrupt", { params: { path: { chat: chatId } } }));
    info("interrupt requested");
  });

  chats.command("approve").description("Approve (or --deny) tool calls awaiting approval").argument("<chat>", "chat id").argument("[tool-call-id]", "one call; all pending when omitted")
    .option("--deny", "deny instead of approve")
    .option("--no-follow", "return without streaming the rest of the turn")
    .action(async (chatId: string, toolCallId: string | undefined, flags: { deny?: boolean; follow: boolean }) => {
      const { client, url, token } = await session();
      const pending = unwrap(await client.GET("/api/v1/chats/{chat}/tool-calls", { params: { path: { chat: chatId } } })).tool_calls;
      const targets = toolCallId ? [toolCallId] : pending.map((call) => call.tool_call_id);
      if (targets.length === 0) return info("nothing awaits approval");
      let status = "";
      for (const id of targets) {
        status = unwrap(await client.POST("/api/v1/chats/{chat}/tool-calls/{tool_call_id}/decision", { params: { path: { chat: chatId, tool_call_id: id } }, body: { approved: !flags.deny } })).status;
        info(`${flags.deny ? "denied" : "approved"} ${id}`);
      }
      if (flags.follow && status === "pending") process.exitCode = await followChat(url, token, chatId);
    });
}
