export { TunnelError, type AgentConnection, type AgentFetchInit, type DialOptions, type Logger, type Transport, type TunnelErrorCode } from "./transport.ts";
export { RelayServer, DEFAULT_RELAY_PATH, type RelayServerOptions } from "./relay/relay-server.ts";
export { RelayAgent, type RelayAgentOptions, type RelayAgentState } from "./relay/relay-agent.ts";
export { TailnetTransport, type TailnetEndpoint, type TailnetTransportOptions } from "./tailnet/tailnet-transport.ts";
export { serveOnTailnet, type TailnetAgentServer, type TailnetAgentServerOptions } from "./tailnet/tailnet-agent-server.ts";
export { TAILNET_CREDENTIAL_HEADER, createCredential, credentialMatches } from "./tailnet/credential.ts";
export { Headscale, CONTROL_PLANE_TAG, DAEMON_TAILNET_PORTS, KILN_USER, WORKSPACE_TAG, defaultPolicy, type HeadscaleOptions, type TailnetPolicy } from "./tailscale/headscale.ts";
export { HeadscaleApi, HeadscaleApiError, type Coordinator, type HeadscaleNode, type PreauthKey } from "./tailscale/headscale-api.ts";
export { TailscaleNode, type PeerPath, type TailscaleBinaries, type TailscaleNodeOptions } from "./tailscale/tailscaled.ts";
