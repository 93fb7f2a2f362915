import { describe, expect, it } from "vitest";
import { parseDuration, parseSchedule } from "./cron.ts";

describe("coder_script cron schedules", () => {
  const at = (text: string) => new Date(text);

  it("reads five and six field expressions", () => {
    expect(parseSchedule("*/15 * * * *").next(at("2026-03-01T10:07:30")).toString()).toBe(at("2026-03-01T10:15:00").toString());
    expect(parseSchedule("30 0 9 * * 1-5").next(at("2026-03-06T09:00:31")).toString()).toBe(at("2026-03-09T09:00:30").toString()); // Friday → Monday
    expect(parseSchedule("0 0 1 1 *").next(at("2026-06-01T00:00:00")).toString()).toBe(at("2027-01-01T00:00:00").toString());
    expect(parseSchedule("0 12 * * 7").next(at("2026-03-02T00:00:00")).getDay()).toBe(0);
  });

  it("reads descriptors and @every", () => {
    expect(parseSchedule("@hourly").next(at("2026-03-01T10:07:30")).toString()).toBe(at("2026-03-01T11:00:00").toString());
    expect(parseSchedule("@every 1m30s").next(at("2026-03-01T10:00:00")).getTime() - at("2026-03-01T10:00:00").getTime()).toBe(90_000);
    expect(parseDuration("2h")).toBe(7_200_000);
  });

  it("refuses what it cannot read", () => {
    expect(() => parseSchedule("* * *")).toThrow("must have 5 or 6 fields");
    expect(() => parseSchedule("61 * * * *")).toThrow("out of range");
    expect(() => parseSchedule("@every soon")).toThrow("cannot read duration");
  });
});
