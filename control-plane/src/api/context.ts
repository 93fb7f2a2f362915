import type { AgentConnection, Transport } from "@kiln/tailnet";
import type { Actor } from "../auth/index.ts";
import type { DatabaseHandle } from "../db/index.ts";
import type { ChatEventBus } from "../chats/events.ts";
import type { Logger } from "../logger.ts";
import type { SecretBox } from "../secrets/index.ts";
import type { DaemonBundle } from "../agents/daemon-bundle.ts";
import type { ControlPlaneTailnet } from "../tailnet/index.ts";
import type { TunnelPath } from "../tailnet/tunnel.ts";

/** The tunnel as the API sees it: reach an agent, tell whether it is connected, cut it off. */
export interface Tunnel extends Pick<Transport, "dial" | "isConnected"> {
  disconnect(agentId: string): void;
  /** How a connection it dialed reaches the agent (the relay when left out). */
  pathOf?(connection: AgentConnection): TunnelPath;
}
export type { AgentConnection };

export interface AppDeps {
  database: DatabaseHandle;
  log: Logger;
  tunnel: Tunnel;
  version: string;
  secrets: SecretBox;
  /** Builds the kiln-daemon bundle workspaces download; one is made on demand when absent. */
  daemonBundler?: { get(): Promise<DaemonBundle> };
  chats: {
    bus: ChatEventBus;
    /** A model reference (id or name; null for the default) to a model id; throws a 400 for unknown ones. */
    resolveModelId(reference: string | null): Promise<string | null>;
    compactNow(chatId: string): Promise<boolean>;
  };
  /** The tailnet, when this server runs with one (`kiln server --tailnet`). */
  tailnet?: ControlPlaneTailnet;
  /** Serve the built dashboard at `/` (its dist directory; the default build output when omitted). */
  dashboard?: { directory?: string };
}

export interface AppEnv {
  Variables: {
    actor: Actor;
    requestId: string;
    log: Logger;
  };
}
