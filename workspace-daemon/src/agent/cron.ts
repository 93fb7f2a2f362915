/**
 * Schedules for coder_script `cron`: what the Coder provider accepts (robfig/cron with an optional seconds
 * field): five or six fields of numbers, `*`, ranges, lists and steps, or @hourly/@daily/@weekly/@monthly/
 * @yearly/@every <duration>. Local time, like the Coder agent.
 */
export interface Schedule {
  /** The first time after `from` the script should run. */
  next(from: Date): Date;
}

const DESCRIPTORS: Record<string, string> = {
  "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *", "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
};
const RANGES: [number, number][] = [[0, 59], [0, 59], [0, 23], [1, 31], [1, 12], [0, 7]];

export function parseSchedule(expression: string): Schedule {
  const trimmed = expression.trim();
  const every = /^@every\s+(.+)$/.exec(trimmed);
  if (every) {
    const milliseconds = parseDuration(every[1]!);
    return { next: (from) => new Date(from.getTime() + milliseconds) };
  }
  const fields = (DESCRIPTORS[trimmed] ?? trimmed).split(/\s+/);
  if (fields.length === 5) fields.unshift("0");
  if (fields.length !== 6) throw new Error(`cron expression ${JSON.stringify(expression)} must have 5 or 6 fields`);
  const sets = fields.map((field, index) => parseField(field, RANGES[index]!, expression));
  const [seconds, minutes, hours, days, months, weekdays] = sets as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  const dayRestricted = fields[3] !== "*" && fields[3] !== "?";
  const weekdayRestricted = fields[5] !== "*" && fields[5] !== "?";
  const dayMatches = (date: Date) => {
    const day = days.has(date.getDate());
    const weekday = weekdays.has(date.getDay());
    // Standard cron: when both are restricted, either may match.
    if (dayRestricted && weekdayRestricted) return day || weekday;
    return day && weekday;
  };
  return {
    next(from) {
      const date = new Date(from.getTime());
      date.setMilliseconds(0);
      date.setSeconds(date.getSeconds() + 1);
      const limit = from.getTime() + 5 * 366 * 24 * 3600 * 1000;
      while (date.getTime() < limit) {
        if (!months.has(date.getMonth() + 1)) {
          date.setMonth(date.getMonth() + 1, 1);
          date.setHours(0, 0, 0);
          continue;
        }
        if (!dayMatches(date)) {
          date.setDate(date.getDate() + 1);
          date.setHours(0, 0, 0);
          continue;
        }
        if (!hours.has(date.getHours())) {
          date.setHours(date.getHours() + 1, 0, 0);
          continue;
        }
        if (!minutes.has(date.getMinutes())) {
          date.setMinutes(date.getMinutes() + 1, 0);
          continue;
        }
        if (!seconds.has(date.getSeconds())) {
          date.setSeconds(date.getSeconds() + 1);
          continue;
        }
        return date;
      }
      throw new Error(`cron expression ${JSON.stringify(expression)} never matches`);
    },
  };
}

function parseField(field: string, [low, high]: [number, number], expression: string): Set<number> {
  const values = new Set<number>();
  for (const part of field.split(",")) {
    const match = /^(\*|\?|\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(part);
    if (!match) throw new Error(`cron expression ${JSON.stringify(expression)}: cannot read ${JSON.stringify(part)}`);
    const wildcard = match[1] === "*" || match[1] === "?";
    const start = wildcard ? low : Number(match[1]);
    const end = match[2] !== undefined ? Number(match[2]) : wildcard || match[3] !== undefined ? high : start;
    const step = match[3] !== undefined ? Number(match[3]) : 1;
    if (start < low || end > high || start > end || step < 1) throw new Error(`cron expression ${JSON.stringify(expression)}: ${JSON.stringify(part)} is out of range ${low}-${high}`);
    for (let value = start; value <= end; value += step) values.add(value === 7 && high === 7 ? 0 : value);
  }
  return values;
}

/** Go's time.ParseDuration for the units cron uses: h, m, s, ms. */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  let rest = text.trim();
  if (!rest) throw new Error("empty duration");
  while (rest) {
    const match = /^(\d+(?:\.\d+)?)(ms|h|m|s)/.exec(rest);
    if (!match) throw new Error(`cannot read duration ${JSON.stringify(text)}`);
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  if (total <= 0) throw new Error(`duration ${JSON.stringify(text)} must be positive`);
  return total;
}
