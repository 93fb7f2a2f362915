import { and, count, eq, inArray } from "drizzle-orm";
import type { Tunnel } from "../api/context.ts";
import type { DatabaseHandle } from "../db/index.ts";
import { chats } from "../db/schema.ts";
import { KilnError } from "../errors.ts";
import * as Templates from "../templates/index.ts";
import * as Workspaces from "../workspaces/index.ts";
import { lastAssistantText } from "./context.ts";
import type { ChatEventBus } from "./events.ts";
import * as Store from "./store.ts";
import type { ToolServices } from "./tools/index.ts";

export const MAX_ACTIVE_CHILDREN = 4;

/** The control-plane side of the platform and orchestration tools. */
export function createToolServices(deps: {
  database: DatabaseHandle;
  tunnel: Tunnel;
  bus: ChatEventBus;
  resolveModelId(reference: string): Promise<string>;
  workspaceReadyTimeoutMs?: number;
}): ToolServices {
  const { database, bus } = deps;
  const db = database.db;

  const childOf = async (parent: Store.Chat, childId: string) => {
    const child = await Store.get(db, childId);
    if (!child || child.parentChatId !== parent.id) throw new KilnError("not_found", `no sub-agent ${childId} belongs to this chat`, 404);
    return child;
  };

  return {
    async listTemplates(query) {
      return (await Templates.list(db, { query })).map((template) => ({ id: template.id, name: template.name, description: template.description, kind: template.kind }));
    },
    async readTemplate(reference) {
      const template = await Templates.get(db, reference);
      const version = await Templates.activeVersion(db, template);
      return { ...Templates.toPublic(template), parameters: version.parameters };
    },
    async createWorkspace(owner, input, signal) {
      let view: Workspaces.WorkspaceView;
      try {
        view = await Workspaces.create(database, deps.tunnel, owner, input);
      } catch (error) {
        // A resumed turn finds the workspace its first attempt created.
        if (!(error instanceof KilnError && error.code === "workspace_exists")) throw error;
        view = await Workspaces.get(db, deps.tunnel, owner, input.name);
      }
      const deadline = Date.now() + (deps.workspaceReadyTimeoutMs ?? 10 * 60_000);
      while (Date.now() < deadline) {
        signal.throwIfAborted();
        view = await Workspaces.get(db, deps.tunnel, owner, view.id);
        if (view.status === "failed" || view.status === "canceled") throw new Error(`workspace build ${view.status}: ${view.latest_build?.error ?? "see the build logs"}`);
        if (view.status === "running" && view.agent?.connected && view.agent.lifecycle_state === "ready") return { id: view.id, name: view.name, status: view.status };
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      throw new Error("timed out waiting for the workspace to become ready");
    },
    async spawnChild(parent, input) {
      if (parent.parentChatId) throw new KilnError("depth_limit", "sub-agents cannot spawn further agents", 400);
      const [active] = await db.select({ value: count() }).from(chats)
        .where(and(eq(chats.parentChatId, parent.id), eq(chats.archived, false), inArray(chats.status, ["pending", "running", "requires_action"])));
      if ((active?.value ?? 0) >= MAX_ACTIVE_CHILDREN) {
        throw new KilnError("too_many_agents", `at most ${MAX_ACTIVE_CHILDREN} sub-agents may run at once; wait for or close one first`, 409);
      }
      const modelId = input.model ? await deps.resolveModelId(input.model) : parent.modelId;
      return Store.create(database, bus, {
        ownerId: parent.ownerId, prompt: input.prompt, title: input.title, workspaceId: parent.workspaceId, modelId,
        parentChatId: parent.id, rootChatId: parent.rootChatId ?? parent.id,
      });
    },
    async waitChild(parent, childId, timeoutMs, signal) {
      await childOf(parent, childId);
      const deadline = Date.now() + timeoutMs;
      let wake: () => void = () => {};
      const unsubscribe = bus.subscribe(childId, (stamped) => stamped.event.type === "status" && wake());
      try {
        while (true) {
          const child = (await Store.get(db, childId))!;
          const done = child.status === "waiting" || child.status === "error" || child.archived;
          if (done || Date.now() >= deadline || signal.aborted) {
            const text = lastAssistantText(await Store.messages(db, childId, { limit: 1000 }));
            return { status: child.status, done, lastMessage: child.status === "error" ? `error: ${child.lastError}` : text };
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, Math.min(1_000, Math.max(0, deadline - Date.now())));
            signal.addEventListener("abort", () => resolve(), { once: true });
          });
        }
      } finally {
        unsubscribe();
      }
    },
    async messageChild(parent, childId, message, interrupt) {
      const child = await childOf(parent, childId);
      const result = await Store.send(database, bus, child, { parts: Store.textParts(message), interrupt, userId: parent.ownerId });
      return { queued: result.queued };
    },
    async closeChild(parent, childId) {
      await childOf(parent, childId);
      await close(database, bus, childId);
    },
  };
}

/** Stops a chat and hides it: a running turn is interrupted, queued messages are dropped. */
export async function close(database: DatabaseHandle, bus: ChatEventBus, chatId: string): Promise<void> {
  const [updated] = await database.db.update(chats).set({ archived: true, interruptRequested: true, updatedAt: new Date() }).where(eq(chats.id, chatId)).returning();
  if (updated && updated.status !== "running") {
    await database.db.update(chats).set({ status: "waiting" }).where(eq(chats.id, chatId));
    bus.publish({ type: "status", chat_id: chatId, status: "waiting", error: null });
  }
  await database.notify(Store.CHATS_CHANNEL, chatId);
}
