// The WebSocket endpoints for interactive access, shared by the server, the CLI and the dashboard.
// Imports only zod, so a browser bundle can use it.
import { z } from "zod";

/**
 * `GET /api/v1/workspaces/{workspace}/{kind}` upgraded to a WebSocket:
 * - `pty`: a terminal session. Binary frames are terminal bytes both ways; text frames are
 *   JSON `PtyClientMessage`s from the client and `PtyServerMessage`s from the server.
 * - `ssh`: the raw bytes of an SSH connection to the workspace's SSH server.
 * - `tcp`: the raw bytes of a TCP connection to 127.0.0.1:{port} inside the workspace.
 */
export const InteractiveKind = z.enum(["pty", "ssh", "tcp"]);

/**
 * `ssh` and `tcp` also take `Upgrade: kiln-bytes`: after the `101 Switching Protocols` the connection
 * itself carries the bytes, with no WebSocket framing to build and parse on either end (what
 * `kiln ssh --stdio` uses). The stream ends with a FIN when the workspace side ends, and with a TCP
 * reset when it failed (the workspace agent was lost), which is all a byte stream can say.
 */
export const RAW_BYTES_PROTOCOL = "kiln-bytes";
export type InteractiveKind = z.infer<typeof InteractiveKind>;

const TerminalSize = z.coerce.number().int().min(1).max(1000);

export const PtyQuery = z.object({
  /** Attach to this session (its scrollback is replayed first); a new session starts when omitted. */
  session: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "session must be a terminal session id").optional(),
  cols: TerminalSize.optional(),
  rows: TerminalSize.optional(),
  /** For a new session: run this instead of the login shell. */
  command: z.string().min(1).optional(),
});
export type PtyQuery = z.infer<typeof PtyQuery>;

export const TcpQuery = z.object({ port: z.coerce.number().int().min(1).max(65535) });
export type TcpQuery = z.infer<typeof TcpQuery>;

export const PtyClientMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("resize"), cols: TerminalSize, rows: TerminalSize }),
  /** Text typed into the terminal, for clients that prefer text frames; binary frames do the same. */
  z.object({ type: z.literal("input"), data: z.string() }),
]);
export type PtyClientMessage = z.infer<typeof PtyClientMessage>;

export const PtyServerMessage = z.discriminatedUnion("type", [
  /** First message: the session this socket is attached to (keep the id to reattach later). */
  z.object({ type: z.literal("session"), id: z.string(), created: z.boolean() }),
  /** Last message when the terminal's program ended; the socket then closes with 1000. */
  z.object({ type: z.literal("exit"), exit_code: z.number().int().nullable(), signal: z.string().nullable() }),
]);
export type PtyServerMessage = z.infer<typeof PtyServerMessage>;

/** WebSocket close codes beyond the standard ones. */
export const CloseCode = {
  /** The program or connection ended normally. */
  normal: 1000,
  /** The tunnel to the workspace agent dropped; reconnecting works once the agent is back. */
  agentLost: 4001,
  /** The workspace side failed the stream for another reason. */
  streamFailed: 4002,
} as const;
