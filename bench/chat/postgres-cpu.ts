import { readdirSync, readFileSync } from "node:fs";

/** USER_HZ: Linux reports /proc CPU times in 1/100 s on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

function stat(pid: string): { parent: string; ticks: number; reapedChildrenTicks: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses; the fields after the last ")" are fixed (proc(5): utime is field 14).
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { parent: fields[1] as string, ticks: Number(fields[11]) + Number(fields[12]), reapedChildrenTicks: Number(fields[13]) + Number(fields[14]) };
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system, ms) used so far by the Postgres cluster listening on `port`: its
 * postmaster, the backends alive now, and the backends that exited (the postmaster reaps them,
 * so the kernel adds their time to its children's total). Null where /proc is not readable.
 */
export function postgresCpuMs(port: number): number | null {
  let processes: string[];
  try {
    processes = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry));
  } catch {
    return null;
  }
  const postmaster = processes.find((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return (argv[0] ?? "").endsWith("postgres") && argv.some((argument, index) => argument === "-p" && argv[index + 1] === String(port));
    } catch {
      return false;
    }
  });
  if (!postmaster) return null;
  let ticks = 0;
  for (const pid of processes) {
    const info = stat(pid);
    if (info && pid === postmaster) ticks += info.ticks + info.reapedChildrenTicks;
    else if (info && info.parent === postmaster) ticks += info.ticks;
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}
