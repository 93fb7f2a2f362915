import { describe, expect, test } from "vitest";
import { backoffDelay } from "./backoff.ts";

describe("backoffDelay", () => {
  const options = { initialMs: 250, maxMs: 10_000 };

  test("doubles per attempt between half and all of the ceiling", () => {
    expect(backoffDelay(0, options, () => 0)).toBe(125);
    expect(backoffDelay(0, options, () => 1)).toBe(250);
    expect(backoffDelay(3, options, () => 0)).toBe(1000);
    expect(backoffDelay(3, options, () => 1)).toBe(2000);
  });

  test("never exceeds the maximum, even after many attempts", () => {
    expect(backoffDelay(6, options, () => 1)).toBe(10_000);
    expect(backoffDelay(10_000, options, () => 1)).toBe(10_000);
    expect(backoffDelay(10_000, options, () => 0)).toBe(5000);
  });
});
