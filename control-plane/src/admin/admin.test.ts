import { Writable } from "node:stream";
import { sql } from "drizzle-orm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { authenticate } from "../auth/index.ts";
import { queryRows } from "../db/index.ts";
import { KilnError } from "../errors.ts";
import { collect } from "../llm/index.ts";
import { startFakeLlm } from "../llm/testing/fake-llm.ts";
import { createLogger } from "../logger.ts";
import { createTestApp, type TestApp } from "../testing/app.ts";
import { configureFromEnvironment, Models, Settings } from "./index.ts";

let t: TestApp;
let owner: string;

beforeEach(async () => {
  t = await createTestApp();
  owner = await t.owner();
});
afterEach(async () => t.close());

// Ends in letters no id or timestamp contains, so a leaked tail would be noticed.
const anthropicKey = "sk-ant-api03-very-secret-key-QxWz";

async function createProvider(body: Record<string, unknown>) {
  const created = await t.call("POST", "/api/v1/admin/providers", { token: owner, body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as { id: string; name: string };
}

async function createModel(body: Record<string, unknown>) {
  const created = await t.call("POST", "/api/v1/admin/models", { token: owner, body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as { id: string; model: string; is_default: boolean };
}

function issueFields(body: { error: { details: { issues?: { field: string }[]; field?: string } } }): string[] {
  return body.error.details.issues?.map((issue) => issue.field) ?? [body.error.details.field!];
}

describe("providers", () => {
  it("seals the API key at rest and never returns it, nor any part of it", async () => {
    const responses: unknown[] = [];
    const provider = await createProvider({ name: "anthropic", type: "anthropic", api_key: anthropicKey });
    responses.push(provider);
    expect(provider).toMatchObject({ name: "anthropic", type: "anthropic", has_api_key: true, base_url: null, settings: {}, enabled: true });
    expect(Object.keys(provider)).not.toContain("api_key");
    await createModel({ provider_id: provider.id, model: "claude-sonnet-4-5", is_default: true });
    responses.push((await t.call("GET", "/api/v1/admin/providers", { token: owner })).body);
    responses.push((await t.call("PATCH", `/api/v1/admin/providers/${provider.id}`, { token: owner, body: { name: "claude" } })).body);
    responses.push((await t.call("GET", "/api/v1/admin/models", { token: owner })).body);
    responses.push((await t.call("GET", "/api/v1/models", { token: owner })).body);
    for (const response of responses) {
      const text = JSON.stringify(response);
      expect(text).not.toContain(anthropicKey);
      expect(text).not.toContain(anthropicKey.slice(-4));
    }

    const [row] = await queryRows<Record<string, unknown>>(t.database.db, sql`SELECT * FROM llm_providers`);
    expect(JSON.stringify(row)).not.toContain(anthropicKey);
    expect(JSON.stringify(row)).not.toContain(anthropicKey.slice(-4));
    expect(t.secrets.open(row!.secret_ciphertext as string)).toBe(anthropicKey);

    // A new key is sealed afresh; a provider type that needs no key can drop it.
    const rotated = await t.call("PATCH", `/api/v1/admin/providers/${provider.id}`, { token: owner, body: { api_key: "sk-ant-rotated" } });
    expect(rotated.body.has_api_key).toBe(true);
    const [after] = await queryRows<{ secret_ciphertext: string }>(t.database.db, sql`SELECT secret_ciphertext FROM llm_providers`);
    expect(t.secrets.open(after!.secret_ciphertext)).toBe("sk-ant-rotated");
    const keyRequired = await t.call("PATCH", `/api/v1/admin/providers/${provider.id}`, { token: owner, body: { api_key: null } });
    expect(keyRequired.status).toBe(400);
    expect(keyRequired.body.error.details).toMatchObject({ field: "api_key", reason: "required for anthropic" });
    const local = await createProvider({ name: "local", type: "openai-compatible", base_url: "http://127.0.0.1:11434/v1", api_key: "local-key" });
    const cleared = await t.call("PATCH", `/api/v1/admin/providers/${local.id}`, { token: owner, body: { api_key: null } });
    expect(cleared.body).toMatchObject({ has_api_key: false, base_url: "http://127.0.0.1:11434/v1" });
  });

  it("deletes a provider with its models", async () => {
    const provider = await createProvider({ name: "google", type: "google", api_key: "gemini-key" });
    await createModel({ provider_id: provider.id, model: "gemini-2.5-pro" });
    expect((await t.call("DELETE", `/api/v1/admin/providers/${provider.id}`, { token: owner })).status).toBe(204);
    expect((await t.call("GET", "/api/v1/admin/models", { token: owner })).body.models).toEqual([]);
    expect((await t.call("DELETE", `/api/v1/admin/providers/${provider.id}`, { token: owner })).status).toBe(404);
  });
});

describe("access", () => {
  it("refuses members on admin routes but lets them list enabled models without secrets", async () => {
    const member = await t.user("mia");
    const provider = await createProvider({ name: "anthropic", type: "anthropic", api_key: anthropicKey });
    const sonnet = await createModel({ provider_id: provider.id, model: "claude-sonnet-4-5", display_name: "Claude Sonnet 4.5", is_default: true });
    await createModel({ provider_id: provider.id, model: "claude-opus-4-1", enabled: false });
    const disabledProvider = await createProvider({ name: "openai", type: "openai", api_key: "sk-openai", enabled: false });
    await createModel({ provider_id: disabledProvider.id, model: "gpt-5" });

    const adminCalls: [string, string, unknown?][] = [
      ["GET", "/api/v1/admin/providers"],
      ["POST", "/api/v1/admin/providers", { name: "x", type: "anthropic", api_key: "k" }],
      ["PATCH", `/api/v1/admin/providers/${provider.id}`, { enabled: false }],
      ["DELETE", `/api/v1/admin/providers/${provider.id}`],
      ["GET", "/api/v1/admin/models"],
      ["POST", "/api/v1/admin/models", { provider_id: provider.id, model: "claude-haiku-4-5" }],
      ["PATCH", `/api/v1/admin/models/${sonnet.id}`, { enabled: false }],
      ["DELETE", `/api/v1/admin/models/${sonnet.id}`],
      ["GET", "/api/v1/admin/system-prompt"],
      ["PUT", "/api/v1/admin/system-prompt", { system_prompt: "Be evil." }],
      ["GET", "/api/v1/admin/tool-policy"],
      ["PUT", "/api/v1/admin/tool-policy", { policy: { "*": "allow" } }],
    ];
    for (const [method, path, body] of adminCalls) {
      const response = await t.call(method, path, { token: member, body });
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(response.body.error.code).toBe("forbidden");
    }
    expect((await t.call("GET", "/api/v1/admin/providers")).status).toBe(401);

    const listed = await t.call("GET", "/api/v1/models", { token: member });
    expect(listed.status).toBe(200);
    expect(listed.body.models).toEqual([expect.objectContaining({
      id: sonnet.id, model: "claude-sonnet-4-5", display_name: "Claude Sonnet 4.5", provider_name: "anthropic", provider_type: "anthropic", is_default: true,
    })]);
    expect(JSON.stringify(listed.body)).not.toMatch(/api_key|secret|sk-/);
    // Nothing changed behind the refusals.
    expect((await t.call("GET", "/api/v1/admin/models", { token: owner })).body.models).toHaveLength(3);
    expect((await Settings.getSystemPrompt(t.database.db))).toBe(Settings.DEFAULT_SYSTEM_PROMPT);
  });
});

describe("validation", () => {
  it("rejects bad input with 400 naming the field and the reason", async () => {
    const provider = await createProvider({ name: "anthropic", type: "anthropic", api_key: anthropicKey });
    const cases: { method: string; path: string; body?: unknown; field: string }[] = [
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "mistral" }, field: "type" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "", type: "openai", api_key: "k" }, field: "name" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "openai", api_key: "k", base_url: "ftp://example.com" }, field: "base_url" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "openai" }, field: "api_key" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "azure-openai", api_key: "k", settings: { api_version: "2024-10-21" } }, field: "base_url" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "bedrock", settings: {} }, field: "settings.region" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "bedrock", settings: { region: "us-east-1", access_key_id: "AKIAIOSFODNN7EXAMPLE" } }, field: "api_key" },
      { method: "POST", path: "/api/v1/admin/providers", body: { name: "x", type: "bedrock", settings: { region: "mars" } }, field: "settings.region" },
      { method: "PATCH", path: "/api/v1/admin/providers/not-a-uuid", body: {}, field: "id" },
      { method: "POST", path: "/api/v1/admin/models", body: { provider_id: provider.id, model: "m", compaction_threshold: 0 }, field: "compaction_threshold" },
      { method: "POST", path: "/api/v1/admin/models", body: { provider_id: provider.id, model: "m", compaction_threshold: 101 }, field: "compaction_threshold" },
      { method: "POST", path: "/api/v1/admin/models", body: { provider_id: provider.id, model: "has space" }, field: "model" },
      { method: "POST", path: "/api/v1/admin/models", body: { provider_id: provider.id, model: "m", context_window: 8192, max_output_tokens: 8192 }, field: "max_output_tokens" },
      { method: "POST", path: "/api/v1/admin/models", body: { provider_id: "00000000-0000-4000-8000-000000000000", model: "m" }, field: "provider_id" },
      { method: "POST", path: "/api/v1/admin/models", body: { provider_id: provider.id, model: "m", enabled: false, is_default: true }, field: "is_default" },
      { method: "PUT", path: "/api/v1/admin/tool-policy", body: { policy: { read_file: "sometimes" } }, field: "policy.read_file" },
      { method: "PUT", path: "/api/v1/admin/system-prompt", body: { system_prompt: 42 }, field: "system_prompt" },
    ];
    for (const testCase of cases) {
      const response = await t.call(testCase.method, testCase.path, { token: owner, body: testCase.body });
      const label = `${testCase.method} ${testCase.path} ${JSON.stringify(testCase.body)}`;
      expect(response.status, label).toBe(400);
      expect(issueFields(response.body), label).toContain(testCase.field);
      expect(response.body.error.message, label).toContain(testCase.field);
    }
    const duplicate = await t.call("POST", "/api/v1/admin/providers", { token: owner, body: { name: "ANTHROPIC", type: "anthropic", api_key: "k" } });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe("provider_exists");
    await createModel({ provider_id: provider.id, model: "claude-sonnet-4-5" });
    const sameModel = await t.call("POST", "/api/v1/admin/models", { token: owner, body: { provider_id: provider.id, model: "claude-sonnet-4-5" } });
    expect(sameModel.status).toBe(409);
    expect((await t.call("GET", "/api/v1/admin/providers", { token: owner })).body.providers).toHaveLength(1);
  });
});

describe("models", () => {
  it("keeps exactly one default as it moves between models", async () => {
    const anthropic = await createProvider({ name: "anthropic", type: "anthropic", api_key: anthropicKey });
    const openai = await createProvider({ name: "openai", type: "openai", api_key: "sk-openai" });
    const sonnet = await createModel({ provider_id: anthropic.id, model: "claude-sonnet-4-5", is_default: true });
    const gpt = await createModel({ provider_id: openai.id, model: "gpt-5", context_window: 400_000 });
    const defaults = async () => ((await t.call("GET", "/api/v1/admin/models", { token: owner })).body.models as { model: string; is_default: boolean }[])
      .filter((model) => model.is_default).map((model) => model.model);

    expect(await defaults()).toEqual(["claude-sonnet-4-5"]);
    const switched = await t.call("PATCH", `/api/v1/admin/models/${gpt.id}`, { token: owner, body: { is_default: true } });
    expect(switched.body).toMatchObject({ model: "gpt-5", is_default: true, provider_name: "openai", context_window: 400_000 });
    expect(await defaults()).toEqual(["gpt-5"]);
    const listed = (await t.call("GET", "/api/v1/models", { token: owner })).body.models as { model: string }[];
    expect(listed.map((model) => model.model)).toEqual(["gpt-5", "claude-sonnet-4-5"]);

    const haiku = await createModel({ provider_id: anthropic.id, model: "claude-haiku-4-5", is_default: true });
    expect(haiku.is_default).toBe(true);
    expect(await defaults()).toEqual(["claude-haiku-4-5"]);

    // Concurrent switches serialise: one default remains.
    await Promise.all([sonnet, gpt, haiku].map((model) => t.call("PATCH", `/api/v1/admin/models/${model.id}`, { token: owner, body: { is_default: true } })));
    expect(await defaults()).toHaveLength(1);

    // Disabling the default leaves none; resolving then takes the oldest enabled model.
    const current = (await defaults())[0];
    const currentId = [sonnet, gpt, haiku].find((model) => model.model === current)!.id;
    const disabled = await t.call("PATCH", `/api/v1/admin/models/${currentId}`, { token: owner, body: { enabled: false } });
    expect(disabled.body).toMatchObject({ enabled: false, is_default: false });
    expect(await defaults()).toEqual([]);
    const fallback = [sonnet, gpt, haiku].find((model) => model.id !== currentId)!;
    expect((await Models.resolve(t.database.db, t.secrets, null)).model.id).toBe(fallback.id);

    expect((await t.call("DELETE", `/api/v1/admin/models/${haiku.id}`, { token: owner })).status).toBe(204);
    expect((await t.call("PATCH", `/api/v1/admin/models/${haiku.id}`, { token: owner, body: { is_default: true } })).status).toBe(404);
  });

  it("resolves by id, name, display name, provider/model or default, and refuses unknown or disabled models", async () => {
    const { db } = t.database;
    await expect(Models.resolve(db, t.secrets, null)).rejects.toMatchObject({ code: "unknown_model", status: 400, details: { field: "model", available: [] } });

    const anthropic = await createProvider({ name: "anthropic", type: "anthropic", api_key: anthropicKey });
    const router = await createProvider({ name: "router", type: "openai-compatible", base_url: "http://127.0.0.1:9/v1" });
    const sonnet = await createModel({ provider_id: anthropic.id, model: "claude-sonnet-4-5", display_name: "Claude Sonnet 4.5" });
    const opus = await createModel({ provider_id: anthropic.id, model: "claude-opus-4-1", is_default: true });
    const routed = await createModel({ provider_id: router.id, model: "claude-sonnet-4-5" });
    await createModel({ provider_id: router.id, model: "old-model", enabled: false });

    const byDefault = await Models.resolve(db, t.secrets, null);
    expect(byDefault.model.id).toBe(opus.id);
    expect(byDefault.providerType).toBe("anthropic");
    expect(byDefault.provider.type).toBe("anthropic");
    expect((await Models.resolve(db, t.secrets, sonnet.id)).model.id).toBe(sonnet.id);
    expect((await Models.resolve(db, t.secrets, "claude sonnet 4.5")).model.id).toBe(sonnet.id);
    expect((await Models.resolve(db, t.secrets, "router/claude-sonnet-4-5")).model.id).toBe(routed.id);
    expect((await Models.resolve(db, t.secrets, "router/claude-sonnet-4-5")).providerType).toBe("openai-compatible");
    // A name two providers serve: the default first, then the oldest.
    expect((await Models.resolve(db, t.secrets, "CLAUDE-SONNET-4-5")).model.id).toBe(sonnet.id);

    const unknown = await Models.resolve(db, t.secrets, "gpt-9").catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(KilnError);
    expect(unknown).toMatchObject({
      code: "unknown_model",
      status: 400,
      details: { field: "model", reason: "no model named 'gpt-9'", available: ["claude-opus-4-1", "anthropic/claude-sonnet-4-5", "router/claude-sonnet-4-5"] },
    });
    expect((unknown as Error).message).toContain("claude-opus-4-1");
    await expect(Models.resolve(db, t.secrets, "old-model")).rejects.toMatchObject({ code: "unknown_model", details: { reason: "model 'old-model' is disabled" } });
    await t.call("PATCH", `/api/v1/admin/providers/${router.id}`, { token: owner, body: { enabled: false } });
    await expect(Models.resolve(db, t.secrets, routed.id)).rejects.toMatchObject({ details: { reason: expect.stringContaining("provider") } });

    // SDK clients are reused until the provider changes.
    const first = await Models.resolve(db, t.secrets, "claude-opus-4-1");
    expect((await Models.resolve(db, t.secrets, opus.id)).provider).toBe(first.provider);
    await t.call("PATCH", `/api/v1/admin/providers/${anthropic.id}`, { token: owner, body: { api_key: "sk-ant-rotated" } });
    expect((await Models.resolve(db, t.secrets, opus.id)).provider).not.toBe(first.provider);
  });

  it("streams through the official SDK with the stored key", async () => {
    const fake = await startFakeLlm("anthropic");
    try {
      const provider = await createProvider({ name: "anthropic", type: "anthropic", api_key: anthropicKey, base_url: fake.url });
      await createModel({ provider_id: provider.id, model: "claude-sonnet-4-5", max_output_tokens: 1024, is_default: true });
      const resolved = await Models.resolve(t.database.db, t.secrets, "claude-sonnet-4-5");
      fake.enqueue({ type: "respond", text: ["Hello ", "from Kiln."] });
      const response = await collect(resolved.provider.stream({
        model: resolved.model.model,
        system: await Settings.getSystemPrompt(t.database.db),
        maxOutputTokens: resolved.model.maxOutputTokens,
        messages: [{ role: "user", content: [{ type: "text", text: "Say hello" }] }],
      }));
      expect(response.text).toBe("Hello from Kiln.");
      expect(response.finish.reason).toBe("stop");
      const [request] = fake.requests;
      expect(request?.path).toBe("/v1/messages");
      expect(request?.headers.authorization).toBe(`Bearer ${anthropicKey}`);
      expect(request?.body).toMatchObject({ model: "claude-sonnet-4-5", max_tokens: 1024, stream: true });
    } finally {
      await fake.close();
    }
  });
});

describe("settings", () => {
  it("serves the built-in system prompt until an admin replaces it, and restores it on null", async () => {
    const { db } = t.database;
    expect((await t.call("GET", "/api/v1/admin/system-prompt", { token: owner })).body).toEqual({ system_prompt: Settings.DEFAULT_SYSTEM_PROMPT, is_default: true });
    const set = await t.call("PUT", "/api/v1/admin/system-prompt", { token: owner, body: { system_prompt: "You are a careful Rust engineer." } });
    expect(set.body).toEqual({ system_prompt: "You are a careful Rust engineer.", is_default: false });
    expect(await Settings.getSystemPrompt(db)).toBe("You are a careful Rust engineer.");
    const reset = await t.call("PUT", "/api/v1/admin/system-prompt", { token: owner, body: { system_prompt: null } });
    expect(reset.body.is_default).toBe(true);
    expect(await Settings.getSystemPrompt(db)).toBe(Settings.DEFAULT_SYSTEM_PROMPT);
  });

  it("allows every tool by default and applies an admin's policy", async () => {
    const { db } = t.database;
    expect(await Settings.getToolPolicy(db)).toEqual({});
    expect(Settings.decisionFor(await Settings.getToolPolicy(db), "execute")).toBe("allow");
    const set = await t.call("PUT", "/api/v1/admin/tool-policy", { token: owner, body: { policy: { "*": "ask", read_file: "allow", process_signal: "deny" } } });
    expect(set.status).toBe(200);
    expect((await t.call("GET", "/api/v1/admin/tool-policy", { token: owner })).body.policy).toEqual({ "*": "ask", read_file: "allow", process_signal: "deny" });
    const policy = await Settings.getToolPolicy(db);
    expect([Settings.decisionFor(policy, "read_file"), Settings.decisionFor(policy, "process_signal"), Settings.decisionFor(policy, "execute")]).toEqual(["allow", "deny", "ask"]);

    const actor = await authenticate(db, owner);
    await expect(Settings.setToolPolicy(db, actor, { read_fiel: "deny" }, { knownTools: ["read_file", "execute"] }))
      .rejects.toMatchObject({ status: 400, details: { field: "policy.read_fiel" } });
    expect(await Settings.getToolPolicy(db)).toEqual(policy);
  });
});

describe("configureFromEnvironment", () => {
  function capturingLogger() {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", destination: new Writable({ write(chunk, _encoding, done) { lines.push(String(chunk)); done(); } }) });
    return { log, lines };
  }

  const env = {
    ANTHROPIC_API_KEY: "sk-ant-from-env",
    OPENAI_API_KEY: "sk-openai-from-env",
    OPENAI_BASE_URL: "http://127.0.0.1:8000/v1",
    OPENAI_MODEL: "Qwen/Qwen3-Coder",
    GEMINI_API_KEY: "gemini-from-env",
    AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
    AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    AWS_REGION: "eu-west-1",
  };

  it("configures each provider with a key in the environment, once, and never logs the keys", async () => {
    const { db } = t.database;
    const { log, lines } = capturingLogger();
    const result = await configureFromEnvironment(db, t.secrets, env, log);
    expect(result).toEqual({ providers: ["anthropic", "openai", "google", "bedrock"], defaultModel: "claude-sonnet-4-5" });

    // One transaction creates them all, so they share a creation time: compare without order.
    const providers = (await t.call("GET", "/api/v1/admin/providers", { token: owner })).body.providers;
    expect(providers).toHaveLength(4);
    expect(providers).toEqual(expect.arrayContaining([
      expect.objectContaining({ name: "anthropic", type: "anthropic", has_api_key: true, base_url: null }),
      expect.objectContaining({ name: "openai", type: "openai-compatible", has_api_key: true, base_url: "http://127.0.0.1:8000/v1" }),
      expect.objectContaining({ name: "google", type: "google", has_api_key: true }),
      expect.objectContaining({ name: "bedrock", type: "bedrock", has_api_key: true, settings: { region: "eu-west-1", access_key_id: "AKIAIOSFODNN7EXAMPLE" } }),
    ]));
    const models = (await t.call("GET", "/api/v1/models", { token: owner })).body.models as { model: string; provider_name: string; context_window: number; is_default: boolean }[];
    expect(models[0]).toMatchObject({ model: "claude-sonnet-4-5", provider_name: "anthropic", is_default: true });
    expect(Object.fromEntries(models.map((model) => [model.model, [model.provider_name, model.context_window, model.is_default]]))).toEqual({
      "claude-sonnet-4-5": ["anthropic", 200_000, true],
      "Qwen/Qwen3-Coder": ["openai", 128_000, false],
      "gemini-2.5-pro": ["google", 1_048_576, false],
      "anthropic.claude-sonnet-4-5-20250929-v1:0": ["bedrock", 200_000, false],
    });
    const bedrock = await Models.resolve(db, t.secrets, "anthropic.claude-sonnet-4-5-20250929-v1:0");
    expect(bedrock.providerType).toBe("bedrock");

    const logged = lines.join("");
    expect(logged).toContain("llm provider configured from environment");
    for (const secret of [env.ANTHROPIC_API_KEY, env.OPENAI_API_KEY, env.GEMINI_API_KEY, env.AWS_SECRET_ACCESS_KEY]) expect(logged).not.toContain(secret);

    // Later starts leave the configuration alone, whatever the environment says.
    const again = await configureFromEnvironment(db, t.secrets, { ...env, ANTHROPIC_API_KEY: "sk-ant-other", KILN_MODEL: "gemini-2.5-pro" }, log);
    expect(again).toEqual({ providers: [], defaultModel: null });
    expect((await t.call("GET", "/api/v1/admin/providers", { token: owner })).body.providers).toHaveLength(4);
    expect((await Models.resolve(db, t.secrets, null)).model.model).toBe("claude-sonnet-4-5");
  });

  it("lets KILN_MODEL pick the default, and adds it when the environment did not name it", async () => {
    const { db } = t.database;
    const { log } = capturingLogger();
    const result = await configureFromEnvironment(db, t.secrets, { ANTHROPIC_API_KEY: "sk-ant-from-env", GEMINI_API_KEY: "gemini-from-env", KILN_MODEL: "gemini-2.5-pro" }, log);
    expect(result.defaultModel).toBe("gemini-2.5-pro");
    expect((await Models.resolve(db, t.secrets, null)).providerType).toBe("google");

    const other = await createTestApp();
    try {
      const added = await configureFromEnvironment(other.database.db, other.secrets, { ANTHROPIC_API_KEY: "sk-ant-from-env", KILN_MODEL: "anthropic/claude-opus-4-1" }, log);
      expect(added).toEqual({ providers: ["anthropic"], defaultModel: "claude-opus-4-1" });
      const resolved = await Models.resolve(other.database.db, other.secrets, null);
      expect(resolved.model).toMatchObject({ model: "claude-opus-4-1", isDefault: true });
    } finally {
      await other.close();
    }
  });

  it("does not store temporary AWS credentials, configures nothing without keys, and names a malformed variable", async () => {
    const { db } = t.database;
    const { log, lines } = capturingLogger();
    await expect(configureFromEnvironment(db, t.secrets, { ANTHROPIC_API_KEY: "sk-ant-from-env", ANTHROPIC_BASE_URL: "localhost:8080" }, log))
      .rejects.toThrow(/ANTHROPIC_BASE_URL.*base_url: an http\(s\) URL/);
    await expect(configureFromEnvironment(db, t.secrets, { ANTHROPIC_API_KEY: "sk-ant-from-env", KILN_MODEL: "not a model" }, log)).rejects.toThrow(/KILN_MODEL/);
    expect((await t.call("GET", "/api/v1/admin/providers", { token: owner })).body.providers).toEqual([]);
    await configureFromEnvironment(db, t.secrets, { AWS_ACCESS_KEY_ID: "ASIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY: "temporary-secret", AWS_SESSION_TOKEN: "session-token" }, log);
    const [bedrock] = (await t.call("GET", "/api/v1/admin/providers", { token: owner })).body.providers;
    expect(bedrock).toMatchObject({ type: "bedrock", has_api_key: false, settings: { region: "us-east-1" } });
    expect(lines.join("")).not.toMatch(/temporary-secret|session-token/);

    const empty = await createTestApp();
    try {
      expect(await configureFromEnvironment(empty.database.db, empty.secrets, {}, log)).toEqual({ providers: [], defaultModel: null });
      expect(lines.join("")).toContain("no llm provider configured");
    } finally {
      await empty.close();
    }
  });
});
