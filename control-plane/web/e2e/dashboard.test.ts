import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startFakeLlm, type FakeLlmServer } from "../../src/llm/testing/fake-llm.ts";
import { parseServerConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { startServer, type RunningServer } from "../../src/server/server.ts";
import { createTestDatabase, type TestDatabase } from "../../src/testing/database.ts";
import { killDaemonsOf, temporaryDirectory } from "../../src/testing/kiln-process.ts";
import { localTemplateDirectory, templateFiles, terraformToolchain } from "../../src/testing/terraform.ts";
import { buildDashboard, chromiumAvailable, launchChromium, screenshot, watchConsole } from "./browser.ts";

const OWNER = { email: "owner@example.com", username: "owner", password: "owner-password-1" };
const toolchain = terraformToolchain();
const MEMBER = { email: "mia@example.com", username: "mia", password: "member-password-1" };

/** Text of the last user message in a fake Anthropic request. */
function lastUserText(request: { body: any }): string {
  const messages = (request.body?.messages ?? []) as { role: string; content: string | { type: string; text?: string }[] }[];
  const last = messages.filter((message) => message.role === "user").at(-1);
  if (!last) return "";
  return typeof last.content === "string" ? last.content : last.content.filter((part) => part.type === "text").map((part) => part.text).join("\n");
}

describe.skipIf(!chromiumAvailable())("dashboard in Chromium against a real kiln server and a fake LLM", () => {
  let database: TestDatabase;
  let fake: FakeLlmServer;
  let server: RunningServer;
  let dataDir: { path: string; remove(): void };
  const terraformWorkspaces = temporaryDirectory("kiln-dashboard-tf-");
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let url: string;
  const consoleErrors: string[] = [];
  let firstChatUrl = "";

  const newChat = async (prompt: string, workspace?: string) => {
    await page.goto(`${url}/chats`);
    await page.getByRole("heading", { name: "New chat" }).waitFor();
    if (workspace) await page.getByLabel("Workspace").selectOption({ label: `${workspace} (running)` });
    await page.getByLabel("What should the agent do?").fill(prompt);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/chats\/[0-9a-f-]{36}$/);
  };
  const waitText = (selector: string, text: string | RegExp, timeout = 30_000) => page.locator(selector, { hasText: text }).first().waitFor({ timeout });
  const chatStatus = () => page.locator(".conversation-meta [data-status]").first().getAttribute("data-status");

  beforeAll(async () => {
    buildDashboard();
    database = await createTestDatabase();
    fake = await startFakeLlm("anthropic");
    dataDir = temporaryDirectory("kiln-dashboard-e2e-");
    server = await startServer(parseServerConfig({ dataDir: dataDir.path, listen: "127.0.0.1:0", postgresUrl: database.url ?? undefined, logLevel: "silent" }),
      createLogger({ level: process.env.KILN_TEST_LOG ?? "silent" }));
    url = server.accessUrl;
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
    watchConsole(page, consoleErrors);
  });

  afterEach(async (test) => {
    if (test.task.result?.state === "fail") await screenshot(page, `failed-${test.task.name.replace(/\W+/g, "-").slice(0, 60)}`).catch(() => undefined);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (server) killDaemonsOf(server.accessUrl);
    await fake?.close();
    await database?.close();
    dataDir?.remove();
    terraformWorkspaces.remove();
  });

  it("sets up the first user of a new deployment and signs in with an HttpOnly cookie", async () => {
    await page.goto(url);
    await page.getByRole("heading", { name: "Set up Kiln" }).waitFor();
    await screenshot(page, "01-setup");
    await page.getByLabel("Email").fill(OWNER.email);
    await page.getByLabel("Username").fill(OWNER.username);
    await page.getByLabel("Password", { exact: true }).fill(OWNER.password);
    await page.getByLabel("Confirm password").fill(OWNER.password);
    await page.getByRole("button", { name: "Create owner account" }).click();
    await page.getByRole("heading", { name: "New chat" }).waitFor();
    const cookie = (await context.cookies()).find((entry) => entry.name === "kiln_session");
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe("Lax");
    expect(await page.evaluate<string>("document.cookie")).not.toContain("kiln_session");
    // The session survives a reload, and the skip link is the first stop for keyboard users.
    await page.goto(`${url}/workspaces`);
    await page.getByRole("link", { name: "Admin" }).waitFor();
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string>("document.activeElement?.textContent")).toBe("Skip to content");
  });

  it("lets the owner add a provider with a write-only key and a default model", async () => {
    await page.goto(`${url}/admin/providers`);
    const form = page.getByRole("form", { name: "Add a provider" });
    await form.getByLabel("Name").fill("fake");
    await form.getByLabel("Type").selectOption("anthropic");
    await form.getByLabel("Base URL").fill(fake.config.baseUrl!);
    await form.getByLabel("API key").fill(fake.config.apiKey!);
    await form.getByRole("button", { name: "Add provider" }).click();
    await waitText("[data-provider=fake]", "key stored");
    expect(await page.content()).not.toContain(fake.config.apiKey!);
    await screenshot(page, "02-admin-providers");

    await page.getByRole("link", { name: "Models" }).click();
    const modelForm = page.getByRole("form", { name: "Add a model" });
    await modelForm.getByLabel("Provider's model id").fill("fake-model");
    await modelForm.getByLabel("Context window (tokens)").fill("200000");
    await modelForm.getByLabel("Default model").check();
    await modelForm.getByRole("button", { name: "Add model" }).click();
    await waitText("tr[data-model=fake-model]", "default");
    await screenshot(page, "03-admin-models");
  });

  it("creates a workspace from a template and follows its build logs", async () => {
    await page.getByRole("link", { name: "Workspaces" }).click();
    await page.getByRole("link", { name: "New workspace" }).click();
    await page.getByLabel("Template").selectOption("local");
    await page.getByLabel("Name").fill("Bad Name");
    await page.getByRole("button", { name: "Create workspace" }).click();
    await waitText("#workspace-name-hint.error", "lowercase");
    await page.getByLabel("Name").fill("dev");
    await page.getByRole("button", { name: "Create workspace" }).click();
    await page.waitForURL(/\/workspaces\/[0-9a-f-]{36}$/);
    await waitText(".facts", "ready", 60_000);
    await page.locator(".log-box .log-stage").first().waitFor();
    await page.getByRole("link", { name: "Terminal" }).waitFor();
    await screenshot(page, "04-workspace-local");
    await page.getByRole("link", { name: "Workspaces" }).click();
    await waitText("tr[data-workspace=dev]", "running");
    await screenshot(page, "04-workspaces");
  });

  it.skipIf(!toolchain)("creates a workspace from a Terraform template through the form generated from its parameters", async () => {
    const token = (await context.cookies()).find((entry) => entry.name === "kiln_session")!.value;
    const pushed = await fetch(`${url}/api/v1/templates/local-tf/versions`, {
      method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ files: await templateFiles(localTemplateDirectory), variables: { workspaces_directory: terraformWorkspaces.path }, display_name: "Local (Terraform)" }),
    });
    expect(pushed.status).toBe(201);
    const versionId = ((await pushed.json()) as { version: { id: string } }).version.id;
    const deadline = Date.now() + 90_000;
    for (let status = ""; status !== "succeeded"; await new Promise((resolve) => setTimeout(resolve, 200))) {
      const version = (await (await fetch(`${url}/api/v1/templates/local-tf/versions/${versionId}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string; error: string | null };
      status = version.status;
      if (status === "failed" || Date.now() > deadline) throw new Error(`template import ${status}: ${version.error}`);
    }

    await page.goto(`${url}/workspaces/new`);
    await page.getByLabel("Template").selectOption("local-tf");
    await page.getByLabel("Greeting").waitFor();
    await page.getByLabel("Name").fill("tf-dev");
    await page.getByLabel("Greeting").fill("NOT LOWER");
    await page.getByLabel("Shell history size").fill("5");
    await page.getByRole("button", { name: "Create workspace" }).click();
    await waitText(".field .error", "Use lowercase letters and spaces only");
    await waitText(".field .error", "must be at least 10");
    await screenshot(page, "05-workspace-parameters");
    await page.getByLabel("Greeting").fill("hi there");
    await page.getByLabel("Shell history size").fill("2000");
    await page.getByRole("button", { name: "Create workspace" }).click();
    await page.waitForURL(/\/workspaces\/[0-9a-f-]{36}$/);
    await waitText(".log-box", "Apply complete!", 120_000);
    await waitText(".facts", "ready", 120_000);
    const workspace = (await (await fetch(`${url}/api/v1/workspaces/tf-dev`, { headers: { authorization: `Bearer ${token}` } })).json()) as { agent: { directory: string } };
    expect(readFileSync(path.join(workspace.agent.directory, "greeting.txt"), "utf8")).toBe("hi there, owner\n");
  });

  it("opens a web terminal in the workspace and reattaches to the same shell after a reload", async () => {
    await page.goto(`${url}/workspaces`);
    await page.getByRole("link", { name: "dev", exact: true }).click();
    await page.getByRole("link", { name: "Terminal" }).click();
    await page.locator('[data-state="open"]').waitFor();
    await page.locator(".terminal-host .xterm").click();
    await page.keyboard.type("echo kiln-terminal-$((6*7)) && export KILN_MARK=kept\n");
    await waitText(".xterm-rows", "kiln-terminal-42");
    await screenshot(page, "07-terminal");
    await page.reload();
    await page.locator('[data-state="open"]').waitFor();
    // The scrollback is replayed, and it is the same shell: its variable is still set.
    await waitText(".xterm-rows", "kiln-terminal-42");
    await page.locator(".terminal-host .xterm").click();
    await page.keyboard.type("echo mark=$KILN_MARK\n");
    await waitText(".xterm-rows", "mark=kept");
  });

  it("stops, starts and deletes a workspace", async () => {
    const created = await page.request.post(`${url}/api/v1/workspaces`, { headers: { "x-kiln-csrf": "1" }, data: { name: "scratch", template: "local" } });
    expect(created.status()).toBe(201);
    await page.goto(`${url}/workspaces`);
    const row = page.locator("tr[data-workspace=scratch]");
    await row.locator('[data-status="running"]').waitFor({ timeout: 60_000 });
    await row.getByRole("button", { name: "Stop" }).click();
    await row.locator('[data-status="stopped"]').waitFor({ timeout: 60_000 });
    await row.getByRole("button", { name: "Start" }).click();
    await row.locator('[data-status="running"]').waitFor({ timeout: 60_000 });
    await row.getByRole("link", { name: "scratch" }).click();
    await page.getByRole("heading", { name: "Build #3 logs" }).waitFor();
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    await page.getByRole("button", { name: "Delete for good" }).click();
    await page.waitForURL(`${url}/workspaces`);
    const deadline = Date.now() + 60_000;
    while ((await row.count()) > 0 && (await row.locator('[data-status="deleted"]').count()) === 0) {
      if (Date.now() > deadline) throw new Error("the workspace was not deleted");
      await page.waitForTimeout(250);
    }
  });

  it("streams a chat in which the agent edits a file (diff card) and runs a command (exit code and output)", async () => {
    fake.enqueue(
      { type: "respond", text: "Creating the file.", toolCalls: [{ id: "call_write", name: "write_file", input: { path: "hello.txt", content: "hello\nworld\n" } }] },
      { type: "respond", reasoning: "The file says world; it should say kiln.", toolCalls: [{ id: "call_edit", name: "edit_files", input: { edits: [{ path: "hello.txt", old_text: "world", new_text: "kiln" }] } }] },
      { type: "respond", toolCalls: [{ id: "call_exec", name: "execute", input: { command: "cat hello.txt" } }] },
      { type: "respond", text: ["All ", "done."], usage: { inputTokens: 321, outputTokens: 12 } },
    );
    await newChat("create hello.txt, then change world to kiln and show it", "dev");
    firstChatUrl = page.url();
    const diff = page.locator('.tool-card[data-tool="edit_files"] .diff');
    await diff.locator(".diff-add", { hasText: "+kiln" }).waitFor();
    await diff.locator(".diff-del", { hasText: "-world" }).waitFor();
    const exec = page.locator('.tool-card[data-tool="execute"]');
    await exec.locator(".exit-code", { hasText: "exit code 0" }).waitFor();
    expect(await exec.locator(".tool-output").textContent()).toBe("hello\nkiln\n");
    await waitText(".message.assistant", "All done.");
    // Reasoning is there, collapsed; usage is shown.
    const reasoning = page.locator(".reasoning").first();
    expect(await reasoning.getAttribute("open")).toBeNull();
    await waitText(".usage", "321 in");
    await waitText(".chat-list", "waiting");
    await screenshot(page, "08-chat-tools");

    const workspaces = await (await page.request.get(`${url}/api/v1/workspaces`)).json();
    const directory = workspaces.workspaces.find((workspace: { name: string }) => workspace.name === "dev").agent.directory as string;
    expect(readFileSync(path.join(directory, "hello.txt"), "utf8")).toBe("hello\nkiln\n");
  });

  it("queues messages sent while the agent runs; a deleted one is never delivered", async () => {
    fake.enqueue(
      { type: "respond", text: ["Working ", "on ", "it ", "slowly ", "one ", "step ", "at ", "a ", "time."], delayMs: 900 },
      { type: "respond", text: "Answer to the kept message." },
    );
    await newChat("take your time");
    await waitText(".message.streaming", "Working");
    const composer = page.getByLabel("Message", { exact: true });
    await composer.fill("keep this one");
    await page.keyboard.press("Enter");
    await waitText(".queue li", "keep this one");
    await composer.fill("drop this one");
    await page.getByRole("button", { name: "Queue", exact: true }).click();
    await waitText(".queue li", "drop this one");
    expect(await chatStatus()).toBe("running");
    await screenshot(page, "09-chat-queue");
    await page.getByRole("button", { name: "Delete queued message 2" }).click();
    await page.locator(".queue li", { hasText: "drop this one" }).waitFor({ state: "detached" });

    await waitText(".message.assistant", "Answer to the kept message.");
    await waitText(".message.user", "keep this one");
    expect(await page.locator(".messages").textContent()).not.toContain("drop this one");
    expect(fake.requests.map(lastUserText)).toContain("keep this one");
    expect(fake.requests.map(lastUserText)).not.toContain("drop this one");
    await page.locator(".queue").waitFor({ state: "detached" });
  });

  it("asks before running a tool the policy marks 'ask', and runs it once approved", async () => {
    await page.goto(`${url}/admin/tool-policy`);
    await page.getByLabel("Policy for execute").selectOption("ask");
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();

    fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_ask", name: "execute", input: { command: "echo approved" } }] },
      { type: "respond", text: "It ran." },
    );
    await newChat("run echo approved", "dev");
    const card = page.locator('.tool-card[data-tool-call-id="call_ask"]');
    await card.getByRole("button", { name: "Approve" }).waitFor();
    expect(await chatStatus()).toBe("requires_action");
    await screenshot(page, "10-chat-approval");
    await card.getByRole("button", { name: "Approve" }).click();
    await card.locator(".exit-code", { hasText: "exit code 0" }).waitFor();
    expect(await card.locator(".tool-output").textContent()).toBe("approved\n");
    await waitText(".message.assistant", "It ran.");

    // Denied, the call never runs and the model hears why.
    fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_deny", name: "execute", input: { command: "touch denied.txt" } }] },
      { type: "respond", text: "Understood, I will not." },
    );
    await page.getByLabel("Message", { exact: true }).fill("now touch denied.txt");
    await page.keyboard.press("Enter");
    const denied = page.locator('.tool-card[data-tool-call-id="call_deny"]');
    await denied.getByRole("button", { name: "Deny" }).click();
    await denied.locator(".tool-output", { hasText: "the user denied this tool call" }).waitFor();
    await waitText(".message.assistant", "Understood, I will not.");
    const listed = (await (await page.request.get(`${url}/api/v1/workspaces`)).json()) as { workspaces: { name: string; agent: { directory: string } }[] };
    expect(existsSync(path.join(listed.workspaces.find((workspace) => workspace.name === "dev")!.agent.directory, "denied.txt"))).toBe(false);

    await page.goto(`${url}/admin/tool-policy`);
    await page.getByLabel("Policy for execute").selectOption("");
    await page.getByRole("button", { name: "Save policy" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
  });

  it("sends the system prompt an admin saved with the next chat's request", async () => {
    const marker = "You are the dashboard test agent (marker 4f2a).";
    await page.goto(`${url}/admin/system-prompt`);
    await page.locator("textarea#system-prompt").fill(marker);
    await page.getByRole("button", { name: "Save system prompt" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    await screenshot(page, "11-admin-system-prompt");

    fake.enqueue({ type: "respond", text: "Hello from the new prompt." });
    const before = fake.requests.length;
    await newChat("which prompt do you have?");
    await waitText(".message.assistant", "Hello from the new prompt.");
    const request = fake.requests.slice(before).find((entry) => lastUserText(entry) === "which prompt do you have?");
    expect(JSON.stringify(request?.body.system)).toContain(marker);
  });

  it("shows a sub-agent as a linked child chat", async () => {
    const firstUserText = (request: { body: any }) => {
      const first = (request.body?.messages ?? [])[0] as { content: string | { type: string; text?: string }[] } | undefined;
      if (!first) return "";
      return typeof first.content === "string" ? first.content : first.content.filter((part) => part.type === "text").map((part) => part.text).join("");
    };
    fake.setResponder((request) => {
      if (firstUserText(request).startsWith("CHILD-TASK")) return { type: "respond", text: "The helper says hi." };
      if (JSON.stringify(request.body.messages).includes("call_spawn")) return { type: "respond", text: "I started a helper." };
      return { type: "respond", toolCalls: [{ id: "call_spawn", name: "spawn_agent", input: { prompt: "CHILD-TASK: say hi", title: "Helper" } }] };
    });
    try {
      await newChat("delegate a greeting to a helper");
      await waitText(".message.assistant", "I started a helper.");
      await page.locator(".sub-agents").getByRole("link", { name: "Helper" }).waitFor();
      await screenshot(page, "12-chat-sub-agent");
      await page.locator('.tool-card[data-tool="spawn_agent"]').getByRole("link", { name: "open the child chat" }).click();
      await waitText(".message.assistant", "The helper says hi.");
      await page.getByRole("link", { name: "sub-agent of parent chat" }).click();
      await waitText(".message.assistant", "I started a helper.");
    } finally {
      fake.setResponder(undefined);
    }
  });

  it("shows the whole conversation after a reload in the middle of a streamed answer", async () => {
    const chunks = ["Alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta ", "iota ", "kappa ", "lambda ", "mu."];
    // Slow enough that the reload lands in the middle of the answer even on a busy machine.
    fake.enqueue({ type: "respond", reasoning: "Counting in Greek.", text: chunks, delayMs: 1200 });
    await newChat("count in greek");
    await waitText(".message.streaming", "gamma");
    await page.reload();
    // Right after the reload, before the answer is committed, the text streamed so far is back.
    await waitText(".message.streaming", "Alpha beta gamma", 10_000);
    expect(await chatStatus()).toBe("running");
    await waitText(".message.user", "count in greek");
    await page.locator(".message.assistant:not(.streaming)", { hasText: "mu." }).waitFor();
    const answer = await page.locator(".message.assistant:not(.streaming) .rich-text").last().textContent();
    expect(answer).toBe(chunks.join(""));
    expect(((await page.locator(".messages").textContent()) ?? "").split("Alpha").length - 1).toBe(1);
  });

  it("stops a running turn, keeps what was written, and marks a compaction summary", async () => {
    fake.enqueue({ type: "respond", text: ["Long ", "answer ", "that ", "keeps ", "going ", "and ", "going ", "and ", "going ", "on."], delayMs: 600 });
    await newChat("write a long answer");
    await waitText(".message.streaming", "answer");
    await page.getByRole("button", { name: "Stop", exact: true }).click();
    await page.locator('.conversation-meta [data-status="waiting"]').waitFor();
    await waitText(".message.assistant", "Long answer");
    expect(await page.locator(".messages").textContent()).not.toContain("on.");

    // Compaction needs a few messages: one more exchange.
    fake.enqueue({ type: "respond", text: "Continuing from there." });
    await page.getByLabel("Message", { exact: true }).fill("continue please");
    await page.keyboard.press("Enter");
    await waitText(".message.assistant", "Continuing from there.");
    await page.locator('.conversation-meta [data-status="waiting"]').waitFor();

    fake.enqueue({ type: "respond", text: "Goal: a long answer. Done so far: two words. Next step: continue." });
    await page.getByRole("button", { name: "Compact" }).click();
    await waitText(".compaction", "Earlier messages were summarized");
    await page.locator(".compaction").getByText("Compaction summary").click();
    await waitText(".compaction", "Next step: continue.");
    expect(await page.locator(".message.compacted").count()).toBeGreaterThan(0);
    await screenshot(page, "12-chat-compacted");
  });

  it("resumes the stream after the connection drops", async () => {
    fake.enqueue({ type: "respond", text: ["one ", "two ", "three ", "four ", "five ", "six."], delayMs: 900 });
    const errorsBefore = consoleErrors.length;
    await newChat("count to six");
    await waitText(".message.streaming", "two");
    // Cut every HTTP connection the server holds, the chat's event stream among them.
    server.http.closeAllConnections();
    await page.locator(".conversation-meta [role=status]", { hasText: "reconnecting" }).waitFor({ timeout: 5_000 }).catch(() => undefined);
    await page.locator(".message.assistant:not(.streaming)", { hasText: "six." }).waitFor();
    expect(await page.locator(".message.assistant .rich-text").last().textContent()).toBe("one two three four five six.");
    // Chromium reports the streams this test cut on purpose; nothing else may be logged.
    const cut = /Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|EMPTY_RESPONSE|CONNECTION_(RESET|CLOSED))/;
    for (let index = consoleErrors.length - 1; index >= errorsBefore; index--) if (cut.test(consoleErrors[index]!)) consoleErrors.splice(index, 1);
  });

  it("keeps admin pages from members", async () => {
    await page.goto(`${url}/admin/users`);
    const form = page.getByRole("form", { name: "Add a user" });
    await form.getByLabel("Email").fill(MEMBER.email);
    await form.getByLabel("Username").fill(MEMBER.username);
    await form.getByLabel("Initial password").fill(MEMBER.password);
    await form.getByRole("button", { name: "Add user" }).click();
    await waitText("tr[data-user=mia]", "member");
    await screenshot(page, "13-admin-users");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    expect((await context.cookies()).some((entry) => entry.name === "kiln_session")).toBe(false);
    await page.getByLabel("Email or username").fill(MEMBER.username);
    await page.getByLabel("Password").fill(MEMBER.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "New chat" }).waitFor();
    expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).count()).toBe(0);
    await page.goto(`${url}/admin/providers`);
    await page.getByRole("heading", { name: "Not allowed" }).waitFor();
    expect(await page.locator("main").textContent()).not.toContain("fake");
    expect((await page.request.get(`${url}/api/v1/admin/providers`)).status()).toBe(403);
    await screenshot(page, "14-member-admin-denied");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
  });

  it("fits a phone screen", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const phonePage = await phone.newPage();
    watchConsole(phonePage, consoleErrors);
    try {
      await phonePage.goto(url);
      await phonePage.getByLabel("Email or username").fill(OWNER.username);
      await phonePage.getByLabel("Password").fill(OWNER.password);
      await phonePage.getByRole("button", { name: "Sign in" }).click();
      await phonePage.getByRole("heading", { name: "New chat" }).waitFor();
      await screenshot(phonePage, "15-phone-chats");
      await phonePage.goto(firstChatUrl);
      await phonePage.locator(".message.assistant", { hasText: "All done." }).waitFor();
      expect(await phonePage.locator(".chat-sidebar").isVisible()).toBe(false);
      const overflow = await phonePage.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
      expect(overflow).toBeLessThanOrEqual(0);
      await screenshot(phonePage, "16-phone-chat");
    } finally {
      await phone.close();
    }
  });

  it("logged no errors in the browser console", () => {
    expect(consoleErrors).toEqual([]);
  });
});
