import type { AgentConnection, Transport } from "@kiln/tailnet";
import type { Actor } from "../auth/index.ts";
import type { DatabaseHandle } from "../db/index.ts";
import type { Logger } from "../logger.ts";

/** The tunnel as the API sees it: reach an agent, tell whether it is connected, cut it off. */
export interface Tunnel extends Pick<Transport, "dial" | "isConnected"> {
  disconnect(agentId: string): void;
}
export type { AgentConnection };

export interface AppDeps {
  database: DatabaseHandle;
  log: Logger;
  tunnel: Tunnel;
  version: string;
}

export interface AppEnv {
  Variables: {
    actor: Actor;
    requestId: string;
    log: Logger;
  };
}
