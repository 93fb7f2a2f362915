import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeLlm, type FakeLlmServer } from "../llm/testing/fake-llm.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { killDaemonsOf, startKilnServer, type KilnServerProcess } from "../testing/kiln-process.ts";

/** A real `kiln server` is SIGKILLed while a side-effecting tool call runs; after a restart the turn finishes and the call ran once. */
describe("crash recovery", () => {
  let database: TestDatabase;
  let fake: FakeLlmServer;
  let server: KilnServerProcess;
  const env = { KILN_CHAT_LEASE_MS: "2000" };

  beforeAll(async () => {
    database = await createTestDatabase();
    fake = await startFakeLlm("anthropic");
    server = await startKilnServer({ postgresUrl: database.url, env });
  });
  afterAll(async () => {
    await server?.stop();
    if (server) killDaemonsOf(server.url);
    await fake?.close();
    await database?.close();
  });

  it("resumes the chat after the lease expires without running the tool call twice", async () => {
    const call = async (method: string, route: string, body?: unknown, token?: string) => {
      const response = await fetch(`${server.url}${route}`, { method, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: response.status, body: await response.json().catch(() => null) as any };
    };
    const token = (await call("POST", "/api/v1/users/first", { email: "o@example.com", username: "owner", password: "password-123" })).body.token;
    const provider = await call("POST", "/api/v1/admin/providers", { name: "fake", type: "anthropic", base_url: fake.url, api_key: "fake-key" }, token);
    await call("POST", "/api/v1/admin/models", { provider_id: provider.body.id, model: "fake-model", is_default: true }, token);
    await call("POST", "/api/v1/workspaces", { name: "dev", template: "local" }, token);
    let directory = "";
    for (let attempt = 0; attempt < 300 && !directory; attempt++) {
      const workspace = (await call("GET", "/api/v1/workspaces/dev", undefined, token)).body;
      if (workspace.agent?.connected && workspace.agent.lifecycle_state === "ready") directory = workspace.agent.directory;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    fake.enqueue(
      { type: "respond", toolCalls: [{ id: "call_once", name: "execute", input: { command: "echo run >> count.txt; sleep 4; echo finished", timeout: 60 } }] },
      { type: "respond", text: "all done" },
    );
    const chat = (await call("POST", "/api/v1/chats", { prompt: "run it once", workspace: "dev" }, token)).body;
    const started = Date.now();
    while (Date.now() - started < 20_000) {
      try {
        if (readFileSync(path.join(directory, "count.txt"), "utf8").length > 0) break;
      } catch {
        // not yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await server.stop("SIGKILL");
    server = await startKilnServer({ postgresUrl: database.url, env, port: server.port, dataDir: server.dataDir });

    let status = "";
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline && status !== "waiting" && status !== "error") {
      status = (await call("GET", `/api/v1/chats/${chat.id}`, undefined, token)).body.chat.status;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(status).toBe("waiting");
    expect(readFileSync(path.join(directory, "count.txt"), "utf8")).toBe("run\n");
    const messages = (await call("GET", `/api/v1/chats/${chat.id}/messages`, undefined, token)).body.messages;
    const result = messages.find((message: { role: string }) => message.role === "tool").parts[0];
    expect(result.output).toContain("finished");
    expect(messages.at(-1).parts[0].text).toBe("all done");
    expect(fake.requests).toHaveLength(2);
  });
});
