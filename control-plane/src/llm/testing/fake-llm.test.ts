import { afterEach, describe, expect, it } from "vitest";
import { collect, createProvider, LlmError } from "../index.ts";
import { startFakeLlm, type FakeLlmServer } from "./fake-llm.ts";

describe("fake LLM server", () => {
  let fake: FakeLlmServer | undefined;
  afterEach(async () => {
    await fake?.close();
  });

  it("answers from the queue first, then from the responder, which sees each request and its index", async () => {
    fake = await startFakeLlm("anthropic");
    const provider = createProvider(fake.config);
    fake.enqueue({ type: "respond", text: "queued" });
    fake.setResponder((request, index) => ({ type: "respond", text: `echo ${index}: ${request.body.messages.at(-1).content[0].text}` }));
    const ask = async (text: string) => (await collect(provider.stream({ model: "claude", messages: [{ role: "user", content: [{ type: "text", text }] }] }))).text;
    expect(await ask("one")).toBe("queued");
    expect(await ask("two")).toBe("echo 1: two");
    expect(await ask("three")).toBe("echo 2: three");
    expect(fake.requests.map((request) => request.body.messages[0].content[0].text)).toEqual(["one", "two", "three"]);
  });

  it("answers unknown routes with a 404 in the provider's error shape", async () => {
    fake = await startFakeLlm("google");
    const response = await fetch(`${fake.url}/v1beta/models/gemini:generateContent`, { method: "POST", body: "{}" });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: { code: 404, message: "fake LLM: no route for POST /v1beta/models/gemini:generateContent", status: "NOT_FOUND" } });
  });

  it("serves Azure only at the configured deployment", async () => {
    fake = await startFakeLlm("azure-openai", { deployment: "prod-gpt" });
    const wrongDeployment = createProvider({ ...fake.config, deployment: "other" });
    const error = await collect(wrongDeployment.stream({ model: "gpt", messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }] })).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(LlmError);
    expect((error as LlmError).options).toMatchObject({ status: 404, retryable: false });
    expect((error as LlmError).message).toContain("DeploymentNotFound");
  });
});
