export { TunnelError, type AgentConnection, type AgentFetchInit, type DialOptions, type Logger, type Transport, type TunnelErrorCode } from "./transport.ts";
export { RelayServer, DEFAULT_RELAY_PATH, type RelayServerOptions } from "./relay/relay-server.ts";
export { RelayAgent, type RelayAgentOptions, type RelayAgentState } from "./relay/relay-agent.ts";
