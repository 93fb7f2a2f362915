const MiB = 1024 * 1024;

/** Per-stream HTTP/2 window: one stream can keep ~8 MiB in flight, enough to fill a fast link at ~50 ms RTT. */
export const STREAM_WINDOW_BYTES = 8 * MiB;
/** Connection-wide window, so a few busy streams do not starve each other. */
export const CONNECTION_WINDOW_BYTES = 32 * MiB;
/** Terminals, log tails and file transfers each hold a stream; node's client assumes 100 until told otherwise. */
export const MAX_CONCURRENT_STREAMS = 1000;
/** In megabytes (node's unit). The default of 10 refuses new streams once large windows are in use. */
export const MAX_SESSION_MEMORY_MB = 64;
