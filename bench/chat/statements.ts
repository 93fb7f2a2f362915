/**
 * Counts the SQL statements this process sends to Postgres: every node-postgres client (the
 * pool's, and the LISTEN connection, which is idle while measuring) goes through
 * `Client.prototype.query`. A transaction counts as its statements, BEGIN and COMMIT included.
 * Wraps the library's method in this process only; no Kiln code is changed.
 */
export class StatementCounter {
  count = 0;

  /** `pool` is node-postgres's Pool (drizzle's `$client`); its `Client` is the class every connection is made from. */
  static install(pool: unknown): StatementCounter | null {
    const prototype = (pool as { Client?: { prototype?: { query?: unknown } } } | null)?.Client?.prototype as
      | ({ query: (...args: unknown[]) => unknown } & { [counterKey]?: StatementCounter })
      | undefined;
    if (!prototype || typeof prototype.query !== "function") return null;
    const existing = prototype[counterKey];
    if (existing) return existing;
    const counter = new StatementCounter();
    const query = prototype.query;
    prototype.query = function (this: unknown, ...args: unknown[]) {
      counter.count++;
      return query.apply(this, args);
    };
    prototype[counterKey] = counter;
    return counter;
  }
}

const counterKey = Symbol.for("kiln.bench.statement-counter");
