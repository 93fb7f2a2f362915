export { createApp, type App } from "./api/app.ts";
export { startServer, type RunningServer } from "./server/server.ts";
export { parseServerConfig, ServerConfig } from "./config.ts";
export { createLogger } from "./logger.ts";
