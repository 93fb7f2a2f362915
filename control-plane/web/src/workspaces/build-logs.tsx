import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { api } from "../api/client.ts";
import { readEvents } from "../api/sse.ts";

interface LogLine {
  id: number;
  created_at: string;
  level: "debug" | "info" | "warn" | "error";
  stage: string;
  output: string;
}

/** A build's log, followed live until the build ends; reconnects resume after the last line. */
export function BuildLogs({ workspaceId, buildNumber }: { workspaceId: string; buildNumber: number }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [jobStatus, setJobStatus] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    setLines([]);
    setJobStatus(null);
    const controller = new AbortController();
    let after = 0;
    const run = async () => {
      for (let attempt = 0; !controller.signal.aborted && attempt < 30; attempt++) {
        try {
          const result = await api.GET("/api/v1/workspaces/{workspace}/builds/{build}/logs", {
            params: { path: { workspace: workspaceId, build: String(buildNumber) }, query: { follow: "true", after } },
            parseAs: "stream",
            signal: controller.signal,
          });
          if (!result.response.ok || !result.data) return;
          for await (const message of readEvents(result.data)) {
            if (message.event === "log") {
              const line = JSON.parse(message.data) as LogLine;
              after = Math.max(after, line.id);
              setLines((current) => [...current, line]);
            } else if (message.event === "status" || message.event === "end") {
              setJobStatus((JSON.parse(message.data) as { job_status: string }).job_status);
              if (message.event === "end") return;
            }
          }
        } catch {
          if (controller.signal.aborted) return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };
    void run();
    return () => controller.abort();
  }, [workspaceId, buildNumber]);

  useLayoutEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines]);

  return (
    <section className="build-logs" aria-label={`Build ${buildNumber} logs`}>
      <h2>Build #{buildNumber} logs {jobStatus && <span className="muted small">({jobStatus})</span>}</h2>
      <pre ref={box} className="log-box" tabIndex={0} aria-live="polite">
        {lines.length === 0 ? <span className="muted">Waiting for output…</span> : lines.map((line) => (
          <span key={line.id} className={`log-${line.level}`}><span className="log-stage">[{line.stage}]</span> {line.output}{"\n"}</span>
        ))}
      </pre>
    </section>
  );
}
