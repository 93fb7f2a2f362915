import type { ProviderType } from "../types.ts";
import { anthropicProtocol } from "./fake-anthropic.ts";
import { bedrockProtocol } from "./fake-bedrock.ts";
import { googleProtocol } from "./fake-google.ts";
import { openAiProtocol } from "./fake-openai.ts";
import { startFakeServer, type FakeLlmServer } from "./fake-server.ts";

export type { FakeLlmServer, FakeRequest, FakeResponder, FakeTurn } from "./fake-server.ts";

export interface FakeLlmOptions {
  /** Port to listen on; a free one by default. */
  port?: number;
  /** azure-openai: the deployment served (and put in `config`). */
  deployment?: string;
  /** azure-openai: the api-version put in `config`. */
  apiVersion?: string;
  /** OpenAI family: the delta field that carries reasoning text. */
  reasoningField?: "reasoning_content" | "reasoning";
}

/**
 * Starts a local HTTP server that speaks `provider`'s real streaming wire format and answers from a script,
 * so the official SDK can be the client. `server.config` is a ProviderConfig pointing at it.
 */
export function startFakeLlm(provider: ProviderType, options: FakeLlmOptions = {}): Promise<FakeLlmServer> {
  const { port } = options;
  switch (provider) {
    case "anthropic":
      return startFakeServer({ provider, port, protocol: anthropicProtocol, config: (url) => ({ type: provider, apiKey: "fake-anthropic-key", baseUrl: url }) });
    case "openai":
    case "openai-compatible":
      return startFakeServer({
        provider,
        port,
        basePath: "/v1",
        protocol: openAiProtocol({ flavor: "openai", reasoningField: options.reasoningField }),
        config: (url) => ({ type: provider, apiKey: "fake-openai-key", baseUrl: url }),
      });
    case "azure-openai": {
      const deployment = options.deployment ?? "fake-deployment";
      return startFakeServer({
        provider,
        port,
        protocol: openAiProtocol({ flavor: "azure", deployment, reasoningField: options.reasoningField }),
        config: (url) => ({ type: provider, apiKey: "fake-azure-key", baseUrl: url, apiVersion: options.apiVersion ?? "2024-10-21", deployment }),
      });
    }
    case "google":
      return startFakeServer({ provider, port, protocol: googleProtocol, config: (url) => ({ type: provider, apiKey: "fake-google-key", baseUrl: url }) });
    case "bedrock":
      return startFakeServer({
        provider,
        port,
        protocol: bedrockProtocol,
        config: (url) => ({ type: provider, baseUrl: url, region: "us-east-1", accessKeyId: "AKIAFAKEFAKEFAKEFAKE", secretAccessKey: "fake-secret-access-key" }),
      });
  }
}
