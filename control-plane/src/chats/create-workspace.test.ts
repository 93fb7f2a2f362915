import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";
import { temporaryDirectory } from "../testing/kiln-process.ts";
import { localTemplateDirectory, templateFiles, terraformToolchain } from "../testing/terraform.ts";

const toolchain = terraformToolchain();

/** Lazy creation: the agent makes its own workspace from a terraform template, then works in it. */
describe.skipIf(!toolchain)("create_workspace with a terraform template (real server, terraform, daemon; fake Anthropic)", { timeout: 180_000 }, () => {
  let h: ChatHarness;
  const workspaces = temporaryDirectory("kiln-chat-tf-");

  beforeAll(async () => {
    h = await startChatHarness();
    const pushed = await h.call("POST", "/api/v1/templates/local-tf/versions", {
      files: await templateFiles(localTemplateDirectory), variables: { workspaces_directory: workspaces.path },
    });
    expect(pushed.status, JSON.stringify(pushed.body)).toBe(201);
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      const version = (await h.call("GET", `/api/v1/templates/local-tf/versions/${pushed.body.version.id}`)).body;
      if (version.status === "succeeded") return;
      if (version.status === "failed") throw new Error(`import failed: ${version.error}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error("import did not finish");
  });
  afterAll(async () => {
    await h?.close();
    workspaces.remove();
  });

  it("creates the workspace, waits for its agent, and runs a command in it", async () => {
    h.fake.enqueue(
      { type: "respond", text: "I need a workspace.", toolCalls: [{ id: "call_create", name: "create_workspace", input: { template_id: "local-tf", name: "agent-box", parameters: { greeting: "made by the agent" } } }] },
      { type: "respond", toolCalls: [{ id: "call_exec", name: "execute", input: { command: "cat greeting.txt && echo \"$KILN_TEMPLATE\"" } }] },
      { type: "respond", text: "Done." },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "make a workspace and greet" });
    expect(created.status).toBe(201);
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"], 180_000);
    expect(chat.status, chat.last_error).toBe("waiting");
    expect(chat.workspace_id).toMatch(/^[0-9a-f-]{36}$/);

    const messages = await h.messages(created.body.id);
    const createResult = messages[2].parts[0];
    expect(createResult).toMatchObject({ type: "tool-result", toolName: "create_workspace", data: { name: "agent-box", status: "running" } });
    expect(createResult.isError).toBeFalsy();
    const execResult = messages[4].parts[0];
    expect(execResult).toMatchObject({ type: "tool-result", toolName: "execute", data: { exit_code: 0 } });
    expect(execResult.output).toContain("made by the agent, owner");
    expect(execResult.output).toContain("local");

    const workspace = (await h.call("GET", `/api/v1/workspaces/${chat.workspace_id}`)).body;
    expect(workspace).toMatchObject({ name: "agent-box", template_name: "local-tf", status: "running", agent: { lifecycle_state: "ready", connected: true } });
  });

  it("hands a bad parameter back to the model as a tool error, with no workspace made", async () => {
    h.fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_bad", name: "create_workspace", input: { template_id: "local-tf", name: "bad-box", parameters: { history_lines: "3" } } }] },
      { type: "respond", text: "That value was refused." },
    );
    const created = await h.call("POST", "/api/v1/chats", { prompt: "make a small workspace" });
    const chat = await h.waitForStatus(created.body.id, ["waiting", "error"], 60_000);
    expect(chat.status).toBe("waiting");
    const result = (await h.messages(created.body.id))[2].parts[0];
    expect(result.isError).toBe(true);
    expect(result.output).toContain("parameters.history_lines");
    expect((await h.call("GET", "/api/v1/workspaces/bad-box")).status).toBe(404);
  });
});
