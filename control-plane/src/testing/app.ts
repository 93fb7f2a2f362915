import { RelayServer } from "@kiln/tailnet";
import { randomBytes } from "node:crypto";
import { createApp, type App } from "../api/app.ts";
import { createChatRuntime, type ChatRuntime } from "../chats/runtime.ts";
import { createSecretBox, type SecretBox } from "../secrets/index.ts";
import { createLogger } from "../logger.ts";
import * as Templates from "../templates/index.ts";
import { version } from "../version.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export interface TestApp {
  app: App;
  database: TestDatabase;
  relay: RelayServer;
  secrets: SecretBox;
  chats: ChatRuntime;
  /** JSON request helper: returns status and parsed body. */
  call(method: string, path: string, options?: { token?: string; body?: unknown }): Promise<{ status: number; body: any }>;
  /** Bootstraps the owner and returns its token. */
  owner(): Promise<string>;
  /** Creates a user through the API as the owner and logs them in. */
  user(username: string, role?: "admin" | "member"): Promise<string>;
  close(): Promise<void>;
}

/** The real app on a real database, driven through `app.request()` (no network listener). */
export async function createTestApp(): Promise<TestApp> {
  const database = await createTestDatabase();
  await Templates.ensureBuiltins(database.db);
  const relay = new RelayServer({ authenticate: async () => null });
  const secrets = createSecretBox(randomBytes(32));
  const log = createLogger({ level: "silent" });
  const chats = createChatRuntime({ database, secrets, tunnel: relay, log, worker: { concurrency: 0 } });
  const app = createApp({ database, log, tunnel: relay, version, secrets, chats: chats.api });
  let ownerToken: string | null = null;
  const call: TestApp["call"] = async (method, path, options = {}) => {
    const headers: Record<string, string> = {};
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const response = await app.request(path, { method, headers, body: options.body === undefined ? undefined : typeof options.body === "string" ? options.body : JSON.stringify(options.body) });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const owner = async () => {
    if (ownerToken) return ownerToken;
    const result = await call("POST", "/api/v1/users/first", { body: { email: "owner@example.com", username: "owner", password: "correct horse battery" } });
    if (result.status !== 201) throw new Error(`bootstrap failed: ${JSON.stringify(result.body)}`);
    ownerToken = result.body.token as string;
    return ownerToken;
  };
  return {
    app, database, relay, secrets, chats, call, owner,
    async user(username, role = "member") {
      const token = await owner();
      const created = await call("POST", "/api/v1/users", { token, body: { email: `${username}@example.com`, username, password: "password-123", role } });
      if (created.status !== 201) throw new Error(`user create failed: ${JSON.stringify(created.body)}`);
      const login = await call("POST", "/api/v1/auth/login", { body: { login: username, password: "password-123" } });
      return login.body.token as string;
    },
    async close() {
      await relay.close();
      await database.close();
    },
  };
}
