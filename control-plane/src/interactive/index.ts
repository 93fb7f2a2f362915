export { InteractiveEndpoints, type InteractiveDeps } from "./websocket-upgrade.ts";
export { authenticateUpgrade } from "./authenticate.ts";
export * from "./protocol.ts";
