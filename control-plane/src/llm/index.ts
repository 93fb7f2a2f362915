import { createAnthropicProvider } from "./anthropic.ts";
import { createBedrockProvider } from "./bedrock.ts";
import { createGoogleProvider } from "./google.ts";
import { createOpenAiProvider } from "./openai.ts";
import type { LlmProvider, ProviderConfig } from "./types.ts";

export * from "./types.ts";
export { collect, type CollectedResponse } from "./collect.ts";

/** The one way the rest of Kiln reaches a model: each provider's official SDK behind `LlmProvider`. */
export function createProvider(config: ProviderConfig): LlmProvider {
  switch (config.type) {
    case "anthropic":
      return createAnthropicProvider(config);
    case "openai":
    case "azure-openai":
    case "openai-compatible":
      return createOpenAiProvider({ ...config, type: config.type });
    case "google":
      return createGoogleProvider(config);
    case "bedrock":
      return createBedrockProvider(config);
  }
}
