export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** Exponential delay with "equal jitter": half fixed, half random, so reconnecting agents spread out. */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
