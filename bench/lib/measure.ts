import os from "node:os";
import { performance } from "node:perf_hooks";

export interface Iterations {
  /** Runs whose times are thrown away: JIT, connection setup, caches. */
  warmup: number;
  /** Runs that are timed. */
  measured: number;
}

/** A phase of operations compared against each other (see sampleInterleaved). */
export interface Phase extends Iterations {
  /** The operations compared in a phase take turns this many times. */
  rounds: number;
}

/** The machine a run happened on, for the JSON line. */
export function machine() {
  const cpus = os.cpus();
  return {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.availableParallelism(),
    cpu_model: cpus[0]?.model.trim() ?? "unknown",
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
  };
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export interface Samples {
  /** Durations of the measured runs that succeeded, in milliseconds. */
  durations: number[];
  /** Runs (warm-up included) that threw; they are not timed. */
  errors: number;
  firstError?: Error;
}

/**
 * Times `operations` against each other: all warm up, then take turns in `rounds` blocks
 * of `measured / rounds` runs, so load from other processes and clock drift hit every
 * operation alike. A run that throws is counted, not timed, so failures show up as a count
 * next to the timings of the runs that worked; only an operation that never works aborts.
 */
export async function sampleInterleaved(iterations: Iterations, rounds: number, operations: (() => Promise<void>)[]): Promise<Samples[]> {
  const results = operations.map((): Samples => ({ durations: [], errors: 0 }));
  const attempt = async (index: number, timed: boolean) => {
    const samples = results[index] as Samples;
    const started = performance.now();
    try {
      await (operations[index] as () => Promise<void>)();
      if (timed) samples.durations.push(performance.now() - started);
    } catch (error) {
      samples.errors += 1;
      samples.firstError ??= error instanceof Error ? error : new Error(String(error));
    }
  };
  for (let index = 0; index < operations.length; index += 1) {
    for (let run = 0; run < iterations.warmup; run += 1) await attempt(index, false);
  }
  const perRound = Math.ceil(iterations.measured / rounds);
  for (let round = 0; round < rounds; round += 1) {
    for (let index = 0; index < operations.length; index += 1) {
      const runs = Math.min(perRound, iterations.measured - round * perRound);
      for (let run = 0; run < runs; run += 1) await attempt(index, true);
    }
  }
  for (const samples of results) {
    if (samples.durations.length === 0) {
      throw new Error(`all ${iterations.warmup + iterations.measured} runs failed; first: ${samples.firstError?.stack}`);
    }
  }
  return results;
}

/** Nearest-rank percentiles: p99 of 200 samples is the 198th smallest, a real observation. */
export function summarize(durations: number[]): Summary {
  if (durations.length === 0) throw new Error("no samples to summarize");
  const sorted = [...durations].sort((left, right) => left - right);
  const percentile = (fraction: number) => sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)] as number;
  return {
    n: sorted.length,
    p50: percentile(0.5),
    p99: percentile(0.99),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    mean: sorted.reduce((total, value) => total + value, 0) / sorted.length,
  };
}

/** Decimal megabytes per second for `bytes` moved in `milliseconds`. */
export function megabytesPerSecond(bytes: number, milliseconds: number): number {
  return bytes / 1e6 / (milliseconds / 1000);
}
