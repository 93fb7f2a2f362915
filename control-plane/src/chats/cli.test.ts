import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { followChat } from "../cli/chat-commands.ts";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";
import { kiln, temporaryDirectory } from "../testing/kiln-process.ts";

describe("kiln chat CLI", () => {
  let h: ChatHarness;
  const config = temporaryDirectory("kiln-cli-");
  const cli = (args: string[]) => kiln(args, { configDir: config.path, env: { KILN_URL: h.server.accessUrl, KILN_TOKEN: h.token } });

  beforeAll(async () => {
    h = await startChatHarness();
    await h.workspace("dev");
  });
  afterAll(async () => {
    await h?.close();
    config.remove();
  });

  it("streams the agent's text and tool calls and exits when the chat waits", async () => {
    h.fake.enqueue(
      { type: "respond", text: "Let me check.", toolCalls: [{ id: "call_ls", name: "execute", input: { command: "echo listing" } }] },
      { type: "respond", text: ["Every", "thing ", "is fine."] },
    );
    const result = await cli(["chat", "is everything fine?", "--workspace", "dev"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("Let me check.");
    expect(result.stdout).toContain("Everything is fine.");
    expect(result.stderr).toContain("▶ execute");
    expect(result.stderr).toContain("✓ execute");
    const list = JSON.parse((await cli(["chats", "list", "--output", "json"])).stdout);
    expect(list[0]).toMatchObject({ title: "is everything fine?", status: "waiting" });
    const show = await cli(["chats", "show", list[0].id]);
    expect(show.stdout).toContain("user: is everything fine?");
  });

  it("a follower that connects after the tool calls ran still prints each once, from the stored messages", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_late", name: "execute", input: { command: "echo late-follower" } }] },
      { type: "respond", text: "Done late." },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "run it", workspace: "dev" });
    expect(created.status).toBe(201);
    expect((await h.waitForStatus(created.body.id, ["waiting", "error"])).status).toBe("waiting");

    const output = { stdout: "", stderr: "" };
    const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
    process.stdout.write = ((chunk: string) => ((output.stdout += chunk), true)) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string) => ((output.stderr += chunk), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await followChat(h.server.accessUrl, h.token, created.body.id);
    } finally {
      process.stdout.write = writes.stdout;
      process.stderr.write = writes.stderr;
    }
    expect(code).toBe(0);
    expect(output.stdout).toContain("Done late.");
    expect(output.stderr.match(/▶ execute \{"command":"echo late-follower"\}/g)).toHaveLength(1);
    expect(output.stderr, output.stderr).toMatch(/✓ execute: /);
    expect(output.stderr.match(/✓ execute: .*late-follower/g)).toHaveLength(1);
  });

  it("stops for an approval and continues after 'kiln chats approve'", async () => {
    await h.call("PUT", "/api/v1/admin/tool-policy", { policy: { write_file: "ask" } });
    try {
      h.fake.enqueue(
        { type: "respond", toolCalls: [{ id: "call_w", name: "write_file", input: { path: "x.txt", content: "x" } }] },
        { type: "respond", text: "written" },
      );
      const asked = await cli(["chat", "write x", "--workspace", "dev"]);
      expect(asked.code).toBe(2);
      expect(asked.stderr).toContain(`needs approval: kiln chats approve`);
      const chatId = JSON.parse((await cli(["chats", "list", "--output", "json"])).stdout)[0].id;
      const approved = await cli(["chats", "approve", chatId]);
      expect(approved.code, approved.stderr).toBe(0);
      expect(approved.stdout).toContain("written");
    } finally {
      await h.call("PUT", "/api/v1/admin/tool-policy", { policy: {} });
    }
  });

  it("lists providers and models for admins without revealing keys", async () => {
    const providers = await cli(["providers", "list", "--output", "json"]);
    expect(providers.code, providers.stderr).toBe(0);
    expect(providers.stdout).toContain("fake");
    expect(providers.stdout).not.toContain(h.fake.config.apiKey!);
    const models = await cli(["models", "list"]);
    expect(models.stdout).toContain("fake-model");
  });

  it("reports a bad model clearly", async () => {
    const result = await cli(["chat", "hi", "--model", "nope"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("no model named 'nope'");
  });
});
