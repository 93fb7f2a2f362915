// Wire protocol between the workspace daemon and the control plane's client.
// Imports nothing but zod so the client can import it without the daemon's runtime.
import { z } from "zod";

export const LIMITS = {
  /** Largest file a line read returns from the start without offset/limit. */
  readMaxFileBytes: 1024 * 1024,
  /** Largest file a line read pages through when given offset/limit; it scans the whole file to count lines. */
  readMaxScanBytes: 256 * 1024 * 1024,
  readDefaultLines: 2000,
  readMaxLines: 2000,
  readMaxLineBytes: 1024,
  readMaxResponseBytes: 32 * 1024,
  /** Bytes sniffed for NUL to call a file binary. */
  binarySniffBytes: 8 * 1024,
  processDefaultTimeoutMs: 10_000,
  processMaxTimeoutMs: 4 * 60 * 60 * 1000,
  processMaxWaitMs: 5 * 60 * 1000,
  /** Terminal output kept per PTY session and replayed to a viewer that (re)attaches. */
  ptyScrollbackBytes: 2 * 1024 * 1024,
  ptyMaxSessions: 64,
  outputHeadBytes: 16 * 1024,
  outputTailBytes: 16 * 1024,
  outputMaxLineBytes: 2048,
} as const;

export const CHAT_ID_HEADER = "x-kiln-chat-id";

// ---------------------------------------------------------------- errors

export const ErrorCode = z.enum([
  "invalid_request",
  "route_not_found",
  "not_found",
  "is_directory",
  "not_directory",
  "permission_denied",
  "invalid_offset",
  "binary_file",
  "file_too_large",
  "no_match",
  "multiple_matches",
  "invalid_workdir",
  "process_not_found",
  "invalid_signal",
  "client_token_conflict",
  "pty_not_found",
  "session_exists",
  "too_many_sessions",
  "connection_refused",
  "internal_error",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ValidationIssue = z.object({
  /** Dotted path of the offending field, e.g. `edits.1.old_text`; empty for the whole body. */
  path: z.string(),
  message: z.string(),
});
export type ValidationIssue = z.infer<typeof ValidationIssue>;

export const ErrorBody = z.object({
  error: z.object({
    code: ErrorCode,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

// ---------------------------------------------------------------- info

export const InfoResponse = z.object({
  version: z.string(),
  os: z.string(),
  arch: z.string(),
  hostname: z.string(),
  home: z.string(),
  /** Directory that relative paths resolve against. */
  workdir: z.string(),
  pid: z.number().int(),
  uptime_ms: z.number().int(),
});
export type InfoResponse = z.infer<typeof InfoResponse>;

// ---------------------------------------------------------------- files

/** Relative to the daemon's workdir, or absolute; `~` is the user's home. */
export const FilePath = z
  .string()
  .min(1, "path must not be empty")
  .refine((value) => !value.includes("\0"), "path must not contain NUL bytes");

/** Octal permission bits, e.g. `0644` or `755`. */
export const FileMode = z.string().regex(/^0?[0-7]{3,4}$/, "mode must be octal permission bits like 0644");

export const ReadFileRequest = z.object({
  path: FilePath,
  /** 1-based first line. */
  offset: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(LIMITS.readMaxLines).optional(),
});
export type ReadFileRequest = z.infer<typeof ReadFileRequest>;

export const ReadTruncationReason = z.enum([
  /** More lines follow the ones returned because the line limit was reached. */
  "line_limit",
  /** More lines follow because the response reached its byte cap. */
  "byte_limit",
]);
export type ReadTruncationReason = z.infer<typeof ReadTruncationReason>;

export const ReadFileResponse = z.object({
  path: z.string(),
  /** `cat -n` style: right-aligned line number, a tab, the line. */
  content: z.string(),
  file_size: z.number().int(),
  total_lines: z.number().int(),
  lines_read: z.number().int(),
  offset: z.number().int(),
  truncated: z.boolean(),
  truncation_reason: ReadTruncationReason.optional(),
  /** Offset to pass to read the next page, present when truncated. */
  next_offset: z.number().int().optional(),
  /** Lines in this page cut at the per-line byte cap. */
  lines_cut: z.number().int(),
});
export type ReadFileResponse = z.infer<typeof ReadFileResponse>;

export const RawReadRequest = z.object({ path: FilePath });
export type RawReadRequest = z.infer<typeof RawReadRequest>;

export const RawWriteRequest = z.object({
  path: FilePath,
  /** Permission bits for the file; default keeps an existing file's mode. */
  mode: FileMode.optional(),
});
export type RawWriteRequest = z.infer<typeof RawWriteRequest>;

export const RawWriteResponse = z.object({
  path: z.string(),
  bytes_written: z.number().int(),
});
export type RawWriteResponse = z.infer<typeof RawWriteResponse>;

export const WriteFileRequest = z.object({
  path: FilePath,
  content: z.string(),
});
export type WriteFileRequest = z.infer<typeof WriteFileRequest>;

export const WriteFileResponse = z.object({
  path: z.string(),
  bytes_written: z.number().int(),
  created: z.boolean(),
});
export type WriteFileResponse = z.infer<typeof WriteFileResponse>;

export const FileEdit = z
  .object({
    path: FilePath,
    old_text: z.string().min(1, "old_text must not be empty"),
    new_text: z.string(),
    replace_all: z.boolean().optional(),
  })
  .refine((edit) => edit.old_text !== edit.new_text, {
    path: ["new_text"],
    message: "new_text must differ from old_text",
  });
export type FileEdit = z.infer<typeof FileEdit>;

export const EditFilesRequest = z.object({
  edits: z.array(FileEdit).min(1, "edits must not be empty"),
});
export type EditFilesRequest = z.infer<typeof EditFilesRequest>;

export const EditedFile = z.object({
  path: z.string(),
  /** Unified diff of the whole batch's effect on this file. */
  diff: z.string(),
  replacements: z.number().int(),
});
export type EditedFile = z.infer<typeof EditedFile>;

export const EditFilesResponse = z.object({ files: z.array(EditedFile) });
export type EditFilesResponse = z.infer<typeof EditFilesResponse>;

export const ListFilesRequest = z.object({ path: FilePath });
export type ListFilesRequest = z.infer<typeof ListFilesRequest>;

export const EntryType = z.enum(["file", "directory", "symlink", "other"]);
export type EntryType = z.infer<typeof EntryType>;

export const DirectoryEntry = z.object({
  name: z.string(),
  type: EntryType,
  /** Bytes; for a symlink, the link itself. */
  size: z.number().int(),
  /** Octal permission bits, e.g. `0644`. */
  mode: z.string(),
  modified_at: z.iso.datetime(),
});
export type DirectoryEntry = z.infer<typeof DirectoryEntry>;

export const ListFilesResponse = z.object({
  path: z.string(),
  entries: z.array(DirectoryEntry),
});
export type ListFilesResponse = z.infer<typeof ListFilesResponse>;

// ---------------------------------------------------------------- processes

const noNul = (value: string) => !value.includes("\0");

export const StartProcessRequest = z.object({
  /** Run with `sh -c`. */
  command: z.string().min(1, "command must not be empty").refine(noNul, "command must not contain NUL bytes"),
  workdir: FilePath.optional(),
  env: z
    .record(
      z.string().regex(/^[^=\0]+$/, "environment variable names must be non-empty, without '=' or NUL"),
      z.string().refine(noNul, "environment values must not contain NUL bytes"),
    )
    .optional(),
  /** Default 10 s for foreground processes; background processes have none unless given. */
  timeout_ms: z.number().int().min(1).max(LIMITS.processMaxTimeoutMs).optional(),
  background: z.boolean().optional(),
  /** A retried start with the same token (in the same chat) attaches to the first process. */
  client_token: z.string().min(1).max(200).optional(),
});
export type StartProcessRequest = z.infer<typeof StartProcessRequest>;

export const ProcessResult = z.object({
  process_id: z.string(),
  command: z.string(),
  running: z.boolean(),
  exit_code: z.number().int().nullable(),
  /** Name of the signal that ended the process, e.g. `SIGTERM`. */
  signal: z.string().nullable(),
  /** Combined stdout and stderr; the middle is omitted past the head and tail caps. */
  output: z.string(),
  truncated: z.boolean(),
  omitted_bytes: z.number().int(),
  wall_duration_ms: z.number().int(),
  timed_out: z.boolean(),
  started_at: z.iso.datetime(),
});
export type ProcessResult = z.infer<typeof ProcessResult>;

export const ProcessSummary = ProcessResult.omit({ output: true });
export type ProcessSummary = z.infer<typeof ProcessSummary>;

export const ListProcessesResponse = z.object({ processes: z.array(ProcessSummary) });
export type ListProcessesResponse = z.infer<typeof ListProcessesResponse>;

export const ProcessOutputRequest = z.object({
  /** Block up to this long for the process to exit; capped at 5 min. */
  wait_ms: z.coerce.number().int().min(0).optional(),
});
export type ProcessOutputRequest = z.infer<typeof ProcessOutputRequest>;

export const ProcessSignal = z.enum(["terminate", "kill"]);
export type ProcessSignal = z.infer<typeof ProcessSignal>;

export const SignalProcessRequest = z.object({
  // Checked by the route so a bad value gets its own error code.
  signal: z.string(),
});
export type SignalProcessRequest = z.infer<typeof SignalProcessRequest>;

export const ProcessStreamEvent = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("started"),
    process_id: z.string(),
    /** True when a client_token matched an existing process. */
    attached: z.boolean(),
  }),
  z.object({
    type: z.literal("output"),
    stream: z.enum(["stdout", "stderr"]),
    /** Base64 of the raw bytes. */
    data: z.string(),
  }),
  z.object({
    type: z.literal("exit"),
    exit_code: z.number().int().nullable(),
    signal: z.string().nullable(),
    timed_out: z.boolean(),
  }),
]);
export type ProcessStreamEvent = z.infer<typeof ProcessStreamEvent>;

// ---------------------------------------------------------------- pty (terminal sessions)

const TerminalSize = z.number().int().min(1).max(1000);

export const CreatePtyRequest = z.object({
  /** Session id to use (a client may pick one so a retried create is detectable); generated when omitted. */
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "id must be 1-64 letters, digits, '-' or '_'").optional(),
  /** Run this with `sh -c` instead of the user's login shell. */
  command: z.string().min(1).optional(),
  cols: TerminalSize.default(80),
  rows: TerminalSize.default(24),
  workdir: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
});
export type CreatePtyRequest = z.infer<typeof CreatePtyRequest>;

export const ResizePtyRequest = z.object({ cols: TerminalSize, rows: TerminalSize });
export type ResizePtyRequest = z.infer<typeof ResizePtyRequest>;

export const PtySessionInfo = z.object({
  id: z.string(),
  command: z.string().nullable(),
  pid: z.number().int(),
  cols: z.number().int(),
  rows: z.number().int(),
  running: z.boolean(),
  exit_code: z.number().int().nullable(),
  signal: z.string().nullable(),
  /** Streams attached right now. */
  viewers: z.number().int(),
  scrollback_bytes: z.number().int(),
  created_at: z.string(),
});
export type PtySessionInfo = z.infer<typeof PtySessionInfo>;

export const ListPtyResponse = z.object({ sessions: z.array(PtySessionInfo) });
export type ListPtyResponse = z.infer<typeof ListPtyResponse>;

// ---------------------------------------------------------------- byte streams
// POST streams whose request and response bodies are raw bytes (opened with the tunnel's openStream):
//   /v1/pty/:id/attach   scrollback, then live terminal output; the request body is typed into the terminal
//   /v1/ssh              an SSH connection to the daemon's built-in SSH server
//   /v1/tcp?port=N       a TCP connection to 127.0.0.1:N inside the workspace

export const TcpStreamRequest = z.object({ port: z.coerce.number().int().min(1).max(65535) });
export type TcpStreamRequest = z.infer<typeof TcpStreamRequest>;
