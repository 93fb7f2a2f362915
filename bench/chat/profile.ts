import { Session } from "node:inspector/promises";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Samples this process's CPU (V8 profiler) while `run` runs and writes `<directory>/<name>.cpuprofile`, for Chrome DevTools or speedscope. */
export async function profiled<T>(directory: string | null, name: string, run: () => Promise<T>): Promise<T> {
  if (!directory) return run();
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    try {
      return await run();
    } finally {
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(join(directory, `${name}.cpuprofile`), JSON.stringify(profile));
    }
  } finally {
    session.disconnect();
  }
}
