import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { queryRows } from "../db/index.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { ChatEventBus } from "./events.ts";

/** Collects the chat ids a bus hears about from other replicas. */
function remoteChanges(bus: ChatEventBus): string[] {
  const seen: string[] = [];
  bus.onRemoteChange((chatId) => seen.push(chatId));
  return seen;
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const kind of ["postgres", "pglite"] as const) {
  describe(`chat event bus across replicas on ${kind}`, () => {
    let database: TestDatabase;
    const buses: ChatEventBus[] = [];
    afterEach(async () => {
      for (const bus of buses.splice(0)) await bus.stop();
      await database?.close();
    });

    const replicas = async () => {
      database = await createTestDatabase({ kind });
      const here = new ChatEventBus(database);
      const there = new ChatEventBus(database);
      buses.push(here, there);
      await here.start();
      await there.start();
      return { here, there, heardHere: remoteChanges(here), heardThere: remoteChanges(there) };
    };

    it("tells other replicas about durable events, not about deltas or itself", async () => {
      const { here, heardHere, heardThere } = await replicas();
      const [quiet, changed] = [randomUUID(), randomUUID()];
      here.publish({ type: "message.delta", chat_id: quiet, part: "text", delta: "x" });
      here.publish({ type: "status", chat_id: changed, status: "running", error: null });
      await until(() => heardThere.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heardThere).toEqual([changed]);
      expect(heardHere).toEqual([]);
    });

    it("sends a statement's remote notice when it commits, the same as publish would", async () => {
      const { here, heardHere, heardThere } = await replicas();
      const chatId = randomUUID();
      await queryRows(database.db, sql`SELECT ${here.remoteNotice(chatId, "status")}`);
      here.publish({ type: "status", chat_id: chatId, status: "waiting", error: null }, { notified: true });
      await until(() => heardThere.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heardThere).toEqual([chatId]);
      expect(heardHere).toEqual([]);
    });
  });
}
