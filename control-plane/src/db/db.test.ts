import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { queryRows } from "./index.ts";
import { createTestDatabase, type TestDatabase } from "../testing/database.ts";
import { users } from "./schema.ts";

for (const kind of ["postgres", "pglite"] as const) {
  describe(`database on ${kind}`, () => {
    let database: TestDatabase;
    afterEach(async () => database?.close());

    it("applies migrations and round-trips a row", async () => {
      database = await createTestDatabase({ kind });
      const [user] = await database.db.insert(users).values({ email: "a@example.com", username: "a", passwordHash: "x" }).returning();
      expect(user?.role).toBe("member");
      const rows = await queryRows(database.db, sql`SELECT count(*)::int AS count FROM users`);
      expect(rows[0]).toEqual({ count: 1 });
    });

    it("delivers NOTIFY to listeners", async () => {
      database = await createTestDatabase({ kind });
      const received = new Promise<string>((resolve) => void database.listen("kiln_test", resolve));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await database.notify("kiln_test", "hello");
      expect(await received).toBe("hello");
    });

    it("delivers NOTIFYs sent in one tick (one statement) in order", async () => {
      database = await createTestDatabase({ kind });
      const received: string[] = [];
      await database.listen("kiln_test", (payload) => received.push(payload));
      await Promise.all(["a", "b", "c"].map((payload) => database.notify("kiln_test", payload)));
      await database.notify("kiln_test", "d");
      const deadline = Date.now() + 5_000;
      while (received.length < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(received).toEqual(["a", "b", "c", "d"]);
    });
  });
}
