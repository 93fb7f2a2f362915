/** Deployment-wide configuration of agent chats: LLM providers and models, the system prompt and the tool policy. */
export * as Providers from "./providers.ts";
export * as Models from "./models.ts";
export * as Settings from "./settings.ts";
export { configureFromEnvironment, type Environment } from "./bootstrap.ts";
export type { ResolvedModel } from "./models.ts";
