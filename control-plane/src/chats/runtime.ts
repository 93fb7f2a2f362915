import * as Models from "../admin/models.ts";
import * as Settings from "../admin/settings.ts";
import type { AppDeps, Tunnel } from "../api/context.ts";
import type { DatabaseHandle } from "../db/index.ts";
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
  const worker = new ChatWorker({
    database,
    bus,
    tunnel: deps.tunnel,
    log: deps.log.child({ module: "chat" }),
    async resolveModel(modelId) {
      const resolved = await Models.resolve(database.db, secrets, modelId);
      return {
        modelId: resolved.model.id, model: resolved.model.model, provider: resolved.provider,
        contextWindow: resolved.model.contextWindow, compactionThreshold: resolved.model.compactionThreshold, maxOutputTokens: resolved.model.maxOutputTokens,
      };
    },
    systemPrompt: () => Settings.getSystemPrompt(database.db),
    toolPolicy: () => Settings.getToolPolicy(database.db),
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
