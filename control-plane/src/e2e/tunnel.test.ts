import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatHarness, type ChatHarness } from "../testing/chat-harness.ts";

/** Through a real kiln-daemon process: many concurrent requests over one relay connection all get whole bodies. */
describe("relay tunnel to a real daemon", () => {
  let h: ChatHarness;
  beforeAll(async () => {
    h = await startChatHarness();
    await h.workspace("dev");
  });
  afterAll(async () => h?.close());

  it("delivers every response body under concurrency", async () => {
    const workspace = (await h.call("GET", "/api/v1/workspaces/dev")).body;
    const connection = await h.server.relay.dial(workspace.agent.id);
    const failures: string[] = [];
    await Promise.all(Array.from({ length: 4 }, async (_, worker) => {
      for (let index = 0; index < 40; index++) {
        const response = await connection.fetch("/v1/processes", {
          method: "POST",
          headers: { "content-type": "application/json", "x-kiln-chat-id": "tunnel-test" },
          body: JSON.stringify({ command: "echo listing", client_token: `t${worker}-${index}` }),
        });
        try {
          const body = (await response.json()) as { exit_code: number; output: string };
          if (body.exit_code !== 0 || body.output !== "listing\n") failures.push(JSON.stringify(body));
        } catch (error) {
          failures.push(String(error));
        }
      }
    }));
    expect(failures).toEqual([]);
  });
});
