export * as Protocol from "./protocol.ts";
export { createDaemonApp, type DaemonApp, type DaemonAppDeps } from "./api/app.ts";
export { ProcessManager, type ProcessManagerOptions } from "./processes/index.ts";
export { loadConfig, ConfigError, type DaemonConfig } from "./config.ts";
