import { existsSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../db/index.ts";
import { users } from "../db/schema.ts";
import { lastUserText, startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";
import { processEnvironment } from "../testing/kiln-process.ts";
import * as Store from "./store.ts";

describe("agent chat loop (real server, real workspace daemon, fake Anthropic)", () => {
  let h: ChatHarness;
  let workspace: { id: string; directory: string };

  beforeAll(async () => {
    h = await startChatHarness();
    workspace = await h.workspace("dev");
  });
  afterAll(async () => h?.close());

  it("writes a file and runs a command in the workspace, then waits", async () => {
    h.fake.enqueue(
      { type: "respond", text: "Writing the file.", toolCalls: [{ id: "call_write", name: "write_file", input: { path: "hello.txt", content: "hi from the agent\n" } }] },
      { type: "respond", toolCalls: [{ id: "call_exec", name: "execute", input: { command: "cat hello.txt && echo ran >> ran.txt" } }] },
      { type: "respond", text: ["All ", "done."], usage: { inputTokens: 120, outputTokens: 8 } },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "create hello.txt and show it", workspace: "dev" });
    expect(created.status).toBe(201);
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"]);
    expect(chat.status, chat.last_error).toBe("waiting");
    expect(readFileSync(path.join(workspace.directory, "hello.txt"), "utf8")).toBe("hi from the agent\n");
    expect(readFileSync(path.join(workspace.directory, "ran.txt"), "utf8")).toBe("ran\n");

    const messages = await h.messages(created.body.id);
    expect(messages.map((message: { role: string }) => message.role)).toEqual(["user", "assistant", "tool", "assistant", "tool", "assistant"]);
    const execResult = messages[4].parts[0];
    expect(execResult).toMatchObject({ type: "tool-result", toolName: "execute", data: { exit_code: 0 } });
    expect(execResult.output).toContain("hi from the agent");
    expect(messages[5].parts).toEqual([{ type: "text", text: "All done." }]);
    expect(messages[5].usage).toMatchObject({ inputTokens: 120, outputTokens: 8 });
    // The provider saw the tool result of the first call in its second request, and the system prompt every time.
    const second = JSON.stringify(h.fake.requests[1]!.body.messages);
    expect(second).toContain("call_write");
    expect(JSON.stringify(h.fake.requests[0]!.body.system)).toContain("Kiln");
  });

  it("hands invalid tool arguments back to the model as a correctable error", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_bad", name: "read_file", input: { offset: -3 } }] },
      { type: "respond", text: "I'll fix that." },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "read something", workspace: "dev" });
    await h.waitForStatus(created.body.id, ["waiting"]);
    const result = (await h.messages(created.body.id))[2].parts[0];
    expect(result.isError).toBe(true);
    expect(result.output).toMatch(/invalid arguments for read_file: path: .*; offset: /);
  });

  it("queues messages sent while a turn runs and delivers them in order", async () => {
    h.fake.enqueue(
      { type: "respond", text: ["slow ", "first ", "answer"], delayMs: 300 },
      { type: "respond", text: "answer to A" },
      { type: "respond", text: "answer to B" },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "start", workspace: "dev" });
    await h.waitForStatus(created.body.id, ["running"]);
    const a = await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "A" });
    const b = await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "B" });
    const c = await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "C" });
    expect(a.body.queued && b.body.queued && c.body.queued).toBe(true);
    expect(c.body.queue.map((queued: { parts: { text: string }[] }) => queued.parts[0]!.text)).toEqual(["A", "B", "C"]);
    const deleted = await h.call("DELETE", `/api/v1/chats/${created.body.id}/queue/${c.body.queue[2].id}`);
    expect(deleted.body.queue).toHaveLength(2);
    expect((await h.call("DELETE", `/api/v1/chats/${created.body.id}/queue/999999`)).status).toBe(404);
    await h.waitForStatus(created.body.id, ["waiting"], 30_000);
    const deadline = Date.now() + 20_000;
    let texts: string[] = [];
    while (Date.now() < deadline) {
      const chat = (await h.call("GET", `/api/v1/chats/${created.body.id}`)).body;
      const messages = await h.messages(created.body.id);
      texts = messages.map((message: { parts: { text?: string }[] }) => message.parts[0]?.text ?? "");
      if (chat.chat.status === "waiting" && chat.queue.length === 0 && texts.includes("answer to B")) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(texts).toEqual(["start", "slow first answer", "A", "answer to A", "B", "answer to B"]);
  });

  it("interrupts a running turn, keeps the partial output and delivers the interrupting message", async () => {
    h.fake.enqueue(
      { type: "respond", text: ["partial ", "output ", "that ", "goes ", "on ", "and ", "on"], delayMs: 400 },
      { type: "respond", text: "ok, stopping" },
    );
    const created = await h.call("POST", `/api/v1/chats`, { prompt: "write an essay", workspace: "dev" });
    // Interrupt once the first text delta has streamed to a client.
    const stream = await fetch(`${h.server.accessUrl}/api/v1/chats/${created.body.id}/stream`, { headers: { authorization: `Bearer ${h.token}` } });
    const reader = stream.body!.getReader();
    let seen = "";
    while (!seen.includes("event: message.delta")) seen += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const sent = await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "stop please", interrupt: true });
    expect(sent.body.queued).toBe(true);
    await h.waitForStatus(created.body.id, ["waiting"]);
    const messages = await h.messages(created.body.id);
    const partial = messages[1].parts[0].text as string;
    expect(partial.startsWith("partial ")).toBe(true);
    expect(partial).not.toContain("and on");
    expect(messages.slice(2).map((message: { parts: { text: string }[] }) => message.parts[0]!.text)).toEqual(["stop please", "ok, stopping"]);
  });

  it("asks for approval when the policy says ask, then runs the approved call", async () => {
    expect((await h.call("PUT", "/api/v1/admin/tool-policy", { policy: { execute: "ask" } })).status).toBe(200);
    try {
      h.fake.enqueue(
        { type: "respond", toolCalls: [{ id: "call_ask", name: "execute", input: { command: "echo approved > approved.txt" } }] },
        { type: "respond", text: "done after approval" },
      );
      const created = await h.call("POST", "/api/v1/chats", { prompt: "run it", workspace: "dev" });
      await h.waitForStatus(created.body.id, ["requires_action"]);
      expect(existsSync(path.join(workspace.directory, "approved.txt"))).toBe(false);
      const pending = await h.call("GET", `/api/v1/chats/${created.body.id}/tool-calls`);
      expect(pending.body.tool_calls).toMatchObject([{ tool_call_id: "call_ask", tool_name: "execute" }]);
      expect((await h.call("POST", `/api/v1/chats/${created.body.id}/tool-calls/nope/decision`, { approved: true })).status).toBe(404);
      const decided = await h.call("POST", `/api/v1/chats/${created.body.id}/tool-calls/call_ask/decision`, { approved: true });
      expect(decided.body.status).toBe("pending");
      await h.waitForStatus(created.body.id, ["waiting"]);
      expect(readFileSync(path.join(workspace.directory, "approved.txt"), "utf8")).toBe("approved\n");
    } finally {
      await h.call("PUT", "/api/v1/admin/tool-policy", { policy: {} });
    }
  });

  it("applies the policy's '*' default to tools it does not name", async () => {
    expect((await h.call("PUT", "/api/v1/admin/tool-policy", { policy: { "*": "deny", read_file: "allow" } })).status).toBe(200);
    try {
      h.fake.enqueue(
        { type: "respond", toolCalls: [{ id: "call_lt", name: "list_templates", input: {} }] },
        { type: "respond", text: "ok" },
      );
      const created = await h.call("POST", "/api/v1/chats", { prompt: "list templates" });
      await h.waitForStatus(created.body.id, ["waiting"]);
      const result = (await h.messages(created.body.id))[2].parts[0];
      expect(result).toMatchObject({ isError: true, output: "the tool 'list_templates' is disabled by the administrator" });
    } finally {
      await h.call("PUT", "/api/v1/admin/tool-policy", { policy: {} });
    }
  });

  it("spawns, awaits and closes a sub-agent", async () => {
    h.fake.setResponder((request) => {
      const text = lastUserText(request.body);
      const isChild = text.includes("count the files");
      const toolResults = JSON.stringify(request.body.messages).match(/"tool_use_id"/g)?.length ?? 0;
      if (isChild) return { type: "respond", text: "there are 3 files" };
      if (toolResults === 0) return { type: "respond", toolCalls: [{ id: "call_spawn", name: "spawn_agent", input: { prompt: "count the files", title: "counter" } }] };
      const childId = /sub-agent ([0-9a-f-]{36})/.exec(JSON.stringify(request.body.messages))?.[1];
      if (toolResults === 1) return { type: "respond", toolCalls: [{ id: "call_wait", name: "wait_agent", input: { chat_id: childId, timeout_seconds: 30 } }] };
      if (toolResults === 2) return { type: "respond", toolCalls: [{ id: "call_close", name: "close_agent", input: { chat_id: childId } }] };
      return { type: "respond", text: "the sub-agent says there are 3 files" };
    });
    try {
      const created = await h.call("POST", "/api/v1/chats", { prompt: "delegate counting", workspace: "dev" });
      const chat = await h.waitForStatus(created.body.id, ["waiting", "error"]);
      expect(chat.status, chat.last_error).toBe("waiting");
      const messages = await h.messages(created.body.id);
      const waitResult = messages.find((message: { role: string; parts: { toolName?: string }[] }) => message.role === "tool" && message.parts[0]?.toolName === "wait_agent");
      expect(waitResult.parts[0].output).toContain("there are 3 files");
      const childId = messages.find((message: { role: string; parts: { toolName?: string }[] }) => message.role === "tool" && message.parts[0]?.toolName === "spawn_agent").parts[0].data.chat_id;
      const child = (await h.call("GET", `/api/v1/chats/${childId}`)).body.chat;
      expect(child).toMatchObject({ parent_chat_id: created.body.id, archived: true, workspace_id: workspace.id });
      // Sub-agents are offered no orchestration tools (depth 1).
      const childRequest = h.fake.requests.find((request) => lastUserText(request.body).includes("count the files"))!;
      expect(childRequest.body.tools.map((tool: { name: string }) => tool.name)).not.toContain("spawn_agent");
    } finally {
      h.fake.setResponder(undefined);
    }
  });

  it("ends in error with a readable message on a non-retryable provider error, and can continue", async () => {
    h.fake.enqueue({ type: "error", status: 401, message: "invalid x-api-key" }, { type: "respond", text: "back again" });
    const created = await h.call("POST", "/api/v1/chats", { prompt: "hello" });
    const chat = await h.waitForStatus(created.body.id, ["error"]);
    expect(chat.last_error).toMatch(/anthropic request failed \(401\)/);
    await h.call("POST", `/api/v1/chats/${created.body.id}/messages`, { content: "try again" });
    await h.waitForStatus(created.body.id, ["waiting"]);
    expect((await h.messages(created.body.id)).at(-1).parts[0].text).toBe("back again");
  });

  it("uses the admin's current system prompt from the next turn on", async () => {
    const systemOfNextTurn = async () => {
      h.fake.enqueue({ type: "respond", text: "ok" });
      const before = h.fake.requests.length;
      const created = await h.call("POST", "/api/v1/chats", { prompt: "hello" });
      await h.waitForStatus(created.body.id, ["waiting"]);
      return JSON.stringify(h.fake.requests[before]!.body.system);
    };
    expect(await systemOfNextTurn()).toContain("Kiln");
    expect((await h.call("PUT", "/api/v1/admin/system-prompt", { system_prompt: "You are a careful Rust engineer." })).status).toBe(200);
    try {
      expect(await systemOfNextTurn()).toContain("careful Rust engineer");
    } finally {
      await h.call("PUT", "/api/v1/admin/system-prompt", { system_prompt: null });
    }
    expect(await systemOfNextTurn()).toContain("Kiln");
  });

  it("stays running when the worker claims a new chat before its creator hears back from Postgres", async () => {
    // The creating request's connection runs through a proxy that holds Postgres's answers back
    // until the worker (woken by the insert's NOTIFY on its own connection) has claimed the chat.
    let hold: Promise<void> | null = null;
    const target = new URL(h.database.url!);
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      let answers = Promise.resolve();
      upstream.on("data", (chunk) => {
        const gate = hold;
        answers = answers.then(() => gate ?? undefined).then(() => void client.write(chunk));
      });
      client.pipe(upstream);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
      upstream.on("close", () => void answers.then(() => client.end()));
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const viaProxy = new URL(target);
    viaProxy.host = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    const slow = await openDatabase({ postgresUrl: viaProxy.toString() });
    const bus = h.server.chats.api.bus;
    let release: () => void = () => {};
    const unsubscribe = bus.subscribeAll(({ event }) => event.type === "status" && event.status === "running" && release());
    try {
      const [owner] = await slow.db.select().from(users).limit(1);
      h.fake.enqueue({ type: "respond", text: ["Claimed ", "first."], delayMs: 400 });
      hold = new Promise<void>((resolve) => {
        release = resolve;
        setTimeout(resolve, 10_000);
      });
      const chat = await Store.create(slow, bus, { ownerId: owner!.id, prompt: "race the worker" });
      hold = null;
      const statuses = () => (bus.replay(chat.id, 0) ?? []).flatMap(({ event }) => event.type === "status" ? [event.status] : []);
      // The worker had claimed it before the insert's answer came back.
      expect(statuses()[0]).toBe("running");
      expect(statuses()).not.toContain("pending");
      const detail = await h.call("GET", `/api/v1/chats/${chat.id}`);
      expect(detail.body.chat.status).toBe("running");
      expect((await h.waitForStatus(chat.id, ["waiting", "error"])).status).toBe("waiting");
      expect(statuses()).toEqual(["running", "waiting"]);
    } finally {
      unsubscribe();
      await slow.close();
      proxy.close();
    }
  });

  it("refuses bad chat input with the field and the reason", async () => {
    const empty = await h.call("POST", "/api/v1/chats", { prompt: "" });
    expect(empty.status).toBe(400);
    expect(empty.body.error.details.issues[0]).toMatchObject({ field: "prompt" });
    const model = await h.call("POST", "/api/v1/chats", { prompt: "hi", model: "no-such-model" });
    expect(model.status).toBe(400);
    expect(model.body.error).toMatchObject({ code: "unknown_model", details: { field: "model" } });
    const workspaceMissing = await h.call("POST", "/api/v1/chats", { prompt: "hi", workspace: "nope" });
    expect(workspaceMissing.status).toBe(404);
    expect((await h.call("GET", "/api/v1/chats/00000000-0000-0000-0000-000000000000")).status).toBe(404);
  });

  it("never puts the provider key into the workspace", async () => {
    const key = h.fake.config.apiKey!;
    const daemonPids = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, "utf8").includes(`KILN_URL=${h.server.accessUrl}`);
      } catch {
        return false;
      }
    });
    expect(daemonPids.length).toBeGreaterThan(0);
    for (const pid of daemonPids) expect(JSON.stringify(processEnvironment(Number(pid)))).not.toContain(key);
    const scan = (directory: string): string[] => readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(directory, entry.name);
      return entry.isDirectory() ? scan(full) : [readFileSync(full, "utf8")];
    });
    for (const content of scan(path.dirname(workspace.directory))) expect(content).not.toContain(key);
    h.fake.enqueue({ type: "respond", toolCalls: [{ id: "call_env", name: "execute", input: { command: "env; cat /proc/self/environ" } }] }, { type: "respond", text: "ok" });
    const created = await h.call("POST", "/api/v1/chats", { prompt: "show env", workspace: "dev" });
    await h.waitForStatus(created.body.id, ["waiting"]);
    const output = (await h.messages(created.body.id))[2].parts[0].output as string;
    expect(output).toContain("PAGER=cat");
    expect(output).not.toContain(key);
    expect(output).not.toContain("KILN_AGENT_TOKEN");
  });
});
