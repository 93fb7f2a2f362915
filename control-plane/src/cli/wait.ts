import { unwrap, type KilnClient, type Schemas } from "../client/index.ts";
import { info } from "./output.ts";

/** Follows a build's log stream (SSE) and prints each line to stderr until the build ends. */
export async function followBuild(options: { url: string; token: string; workspace: string; buildNumber: number; quiet?: boolean }): Promise<string> {
  let after = 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    const response = await fetch(`${options.url}/api/v1/workspaces/${encodeURIComponent(options.workspace)}/builds/${options.buildNumber}/logs?follow=true&after=${after}`, {
      headers: { authorization: `Bearer ${options.token}`, accept: "text/event-stream" },
    });
    if (!response.ok || !response.body) throw new Error(`could not follow build logs: HTTP ${response.status}`);
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? "message";
        const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.replace(/^data: ?/, "")).join("\n");
        const id = /^id: ?(.*)$/m.exec(block)?.[1];
        if (id) after = Number(id);
        if (event === "log" && !options.quiet) {
          const log = JSON.parse(data) as Schemas["BuildLog"];
          info(`  [${log.stage}] ${log.output}`);
        }
        if (event === "end") return (JSON.parse(data) as { job_status: string }).job_status;
      }
    }
    // The stream dropped before the build ended: resume after the last event we saw.
  }
  throw new Error("lost the build log stream too many times");
}

/** Waits until the workspace's agent is connected and ready (or fails). */
export async function waitForAgent(client: KilnClient, workspace: string, timeoutMs = 60_000): Promise<Schemas["Workspace"]> {
  const deadline = Date.now() + timeoutMs;
  let last: Schemas["Workspace"] | null = null;
  while (Date.now() < deadline) {
    last = unwrap(await client.GET("/api/v1/workspaces/{workspace}", { params: { path: { workspace } } }));
    if (last.status === "failed") throw new Error(`workspace build failed: ${last.latest_build?.error ?? "unknown error"}`);
    const agent = last.agent;
    if (agent?.connected && agent.lifecycle_state === "ready") return last;
    if (agent && ["start_error", "start_timeout"].includes(agent.lifecycle_state)) throw new Error(`workspace agent failed to start (${agent.lifecycle_state})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for the workspace agent (lifecycle: ${last?.agent?.lifecycle_state ?? "none"}, connected: ${last?.agent?.connected ?? false})`);
}
