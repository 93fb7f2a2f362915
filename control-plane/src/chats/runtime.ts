import * as Models from "../admin/models.ts";
import * as Settings from "../admin/settings.ts";
import type { AppDeps, Tunnel } from "../api/context.ts";
import { sql } from "drizzle-orm";
import type { DatabaseHandle } from "../db/index.ts";
import { models, providers, settings } from "../db/schema.ts";
import type { Logger } from "../logger.ts";
import type { SecretBox } from "../secrets/index.ts";
import { ChatEventBus } from "./events.ts";
import { createToolServices } from "./services.ts";
import { ChatWorker, type ChatWorkerOptions } from "./worker.ts";

export interface ChatRuntime {
  bus: ChatEventBus;
  worker: ChatWorker;
  /** What the API needs from the chat runtime. */
  api: AppDeps["chats"];
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Wires the agent loop: event bus, tool services, model resolution and the worker. */
export function createChatRuntime(deps: {
  database: DatabaseHandle;
  secrets: SecretBox;
  tunnel: Tunnel;
  log: Logger;
  worker?: Partial<Pick<ChatWorkerOptions, "concurrency" | "leaseMs" | "pollMs" | "maxSteps" | "retry" | "workerId">>;
}): ChatRuntime {
  const { database, secrets } = deps;
  const bus = new ChatEventBus(database);
  const resolveModelId = async (reference: string | null) => (await Models.resolve(database.db, secrets, reference)).model.id;
  const cache = new VersionedCache();
  const worker = new ChatWorker({
    database,
    bus,
    tunnel: deps.tunnel,
    log: deps.log.child({ module: "chat" }),
    resolveModel: (modelId, version) => cache.get(version, `model:${modelId ?? ""}`, async () => {
      const resolved = await Models.resolve(database.db, secrets, modelId);
      return {
        modelId: resolved.model.id, model: resolved.model.model, provider: resolved.provider,
        contextWindow: resolved.model.contextWindow, compactionThreshold: resolved.model.compactionThreshold, maxOutputTokens: resolved.model.maxOutputTokens,
      };
    }),
    systemPrompt: (version) => cache.get(version, "system-prompt", () => Settings.getSystemPrompt(database.db)),
    toolPolicy: (version) => cache.get(version, "tool-policy", () => Settings.getToolPolicy(database.db)),
    configVersion: CONFIG_VERSION,
    services: createToolServices({ database, tunnel: deps.tunnel, bus, resolveModelId }),
    ...deps.worker,
  });
  return {
    bus,
    worker,
    api: { bus, resolveModelId, compactNow: (chatId) => worker.compactNow(chatId) },
    async start() {
      await bus.start();
      await worker.start();
    },
    async stop() {
      await worker.stop();
      await bus.stop();
    },
  };
}

/**
 * A digest of every row model resolution, the system prompt and the tool policy read (providers,
 * models, settings: a handful of rows), so any admin change, on any replica, gives a new value.
 */
const CONFIG_VERSION = sql<string>`(SELECT md5(
  coalesce((SELECT string_agg(p::text, ',' ORDER BY p.id) FROM ${providers} p), '') || '|' ||
  coalesce((SELECT string_agg(m::text, ',' ORDER BY m.id) FROM ${models} m), '') || '|' ||
  coalesce((SELECT string_agg(s::text, ',' ORDER BY s.key) FROM ${settings} s), '')))`;

/** Answers keyed by a config version; a new version forgets all of them. Failures are not kept. */
class VersionedCache {
  private version: string | undefined;
  private readonly entries = new Map<string, Promise<unknown>>();

  get<T>(version: string | undefined, key: string, load: () => Promise<T>): Promise<T> {
    if (version === undefined) return load();
    if (version !== this.version) {
      this.version = version;
      this.entries.clear();
    }
    const cached = this.entries.get(key) as Promise<T> | undefined;
    if (cached) return cached;
    const loaded = load();
    this.entries.set(key, loaded);
    loaded.catch(() => this.entries.get(key) === loaded && this.entries.delete(key));
    return loaded;
  }
}
