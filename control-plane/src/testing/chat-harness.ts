import type { ProviderType } from "../llm/index.ts";
import { startFakeLlm, type FakeLlmServer } from "../llm/testing/fake-llm.ts";
import { parseServerConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import { startServer, type RunningServer } from "../server/server.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { killDaemonsOf, temporaryDirectory } from "./kiln-process.ts";

export interface ChatHarness {
  server: RunningServer;
  fake: FakeLlmServer;
  database: TestDatabase;
  token: string;
  modelId: string;
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>;
  /** Creates a local workspace and waits until its agent is ready. */
  workspace(name: string): Promise<{ id: string; directory: string }>;
  /** Polls until the chat reaches one of the statuses. */
  waitForStatus(chatId: string, statuses: string[], timeoutMs?: number): Promise<any>;
  messages(chatId: string): Promise<any[]>;
  close(): Promise<void>;
}

export interface ChatHarnessOptions {
  provider?: ProviderType;
  contextWindow?: number;
  compactionThreshold?: number;
  chatLeaseMs?: number;
  /** The provider key the admin configures; the fake's own by default. */
  apiKey?: string;
  /** What workspaces get as KILN_URL (e.g. a proxy in front of the server); the server's own address by default. */
  accessUrl?: string;
  /** Run on the server's own embedded PGlite (the default deployment) instead of the test Postgres. */
  embedded?: boolean;
}

/** A real in-process `kiln server` (Postgres, relay, local provisioner, chat worker) talking to a fake LLM. */
export async function startChatHarness(options: ChatHarnessOptions = {}): Promise<ChatHarness> {
  const testDatabase = options.embedded ? null : await createTestDatabase();
  const fake = await startFakeLlm(options.provider ?? "anthropic");
  const dataDir = temporaryDirectory("kiln-chat-");
  const server = await startServer(parseServerConfig({
    dataDir: dataDir.path, listen: "127.0.0.1:0", postgresUrl: testDatabase?.url ?? undefined, logLevel: "silent", chatLeaseMs: options.chatLeaseMs,
    accessUrl: options.accessUrl,
  }), createLogger({ level: process.env.KILN_TEST_LOG ?? "silent" }));
  // Embedded: the server's own PGlite, which it closes itself.
  const database: TestDatabase = testDatabase ?? { ...server.database, url: null, close: async () => {} };
  // The server's own address, not the access URL: the test's API calls (which carry the provider key) stay off a proxy the workspaces use.
  const call: ChatHarness["call"] = async (method, path, body, token) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const bootstrap = await call("POST", "/api/v1/users/first", { email: "owner@example.com", username: "owner", password: "password-123" });
  const token = bootstrap.body.token as string;
  const authed = (method: string, path: string, body?: unknown) => call(method, path, body, token);
  const provider = await authed("POST", "/api/v1/admin/providers", {
    name: "fake", type: fake.config.type, base_url: fake.config.baseUrl, api_key: options.apiKey ?? fake.config.apiKey ?? fake.config.secretAccessKey,
    ...(fake.config.type === "bedrock" ? { settings: { region: fake.config.region, access_key_id: fake.config.accessKeyId } } : {}),
  });
  if (provider.status !== 201) throw new Error(`provider create failed: ${JSON.stringify(provider.body)}`);
  const model = await authed("POST", "/api/v1/admin/models", {
    provider_id: provider.body.id, model: "fake-model", is_default: true,
    context_window: options.contextWindow ?? 200_000, compaction_threshold: options.compactionThreshold ?? 70,
  });
  if (model.status !== 201) throw new Error(`model create failed: ${JSON.stringify(model.body)}`);

  const harness: ChatHarness = {
    server, fake, database, token, modelId: model.body.id,
    call: (method, path, body, override) => call(method, path, body, override ?? token),
    async workspace(name) {
      const created = await authed("POST", "/api/v1/workspaces", { name, template: "local" });
      if (created.status !== 201) throw new Error(`workspace create failed: ${JSON.stringify(created.body)}`);
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const workspace = (await authed("GET", `/api/v1/workspaces/${created.body.id}`)).body;
        if (workspace.status === "failed") throw new Error(`workspace build failed: ${workspace.latest_build?.error}`);
        if (workspace.agent?.connected && workspace.agent.lifecycle_state === "ready") return { id: workspace.id, directory: workspace.agent.directory };
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error("workspace did not become ready");
    },
    async waitForStatus(chatId, statuses, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let chat: any = null;
      while (Date.now() < deadline) {
        chat = (await authed("GET", `/api/v1/chats/${chatId}`)).body.chat;
        if (statuses.includes(chat.status)) return chat;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`chat ${chatId} is ${chat?.status} (${chat?.last_error ?? ""}), not ${statuses.join("/")}`);
    },
    async messages(chatId) {
      return (await authed("GET", `/api/v1/chats/${chatId}/messages`)).body.messages;
    },
    async close() {
      await server.close();
      killDaemonsOf(server.accessUrl);
      await fake.close();
      await database.close();
      dataDir.remove();
    },
  };
  return harness;
}

/** The text of the last user message in a recorded provider request (Anthropic wire format). */
export function lastUserText(body: any): string {
  const messages = (body?.messages ?? []) as { role: string; content: string | { type: string; text?: string }[] }[];
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index]!;
    if (message.role !== "user") continue;
    if (typeof message.content === "string") return message.content;
    const text = message.content.filter((part) => part.type === "text").map((part) => part.text).join("\n");
    if (text) return text;
  }
  return "";
}
