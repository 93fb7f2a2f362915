import type { ProcessStreamEvent } from "../protocol.ts";
import type { ManagedProcess, ProcessEvent } from "./managed-process.ts";

/** Bytes queued for a slow reader before the process's pipes are paused. */
const QUEUE_HIGH_WATER_BYTES = 256 * 1024;

/**
 * The process's events as NDJSON (`ProcessStreamEvent` per line), live as they
 * happen. Cancelling the stream or aborting `signal` kills the process group.
 */
export function processEventStream(process: ManagedProcess, attached: boolean, signal?: AbortSignal): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let unsubscribe = (): void => {};
  let closed = false;

  const stop = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    process.resumeOutput();
    process.kill();
  };

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const send = (event: ProcessStreamEvent) => controller.enqueue(encoder.encode(`${JSON.stringify(event)}\n`));
        const sendExit = () => {
          const result = process.result();
          send({ type: "exit", exit_code: result.exit_code, signal: result.signal, timed_out: result.timed_out });
          closed = true;
          signal?.removeEventListener("abort", stop);
          controller.close();
        };

        send({ type: "started", process_id: process.id, attached });
        if (!process.running) return sendExit();

        unsubscribe = process.subscribe((event: ProcessEvent) => {
          if (event.type === "exit") return sendExit();
          send({ type: "output", stream: event.stream, data: event.data.toString("base64") });
          if ((controller.desiredSize ?? 1) <= 0) process.pauseOutput();
        });
        if (signal?.aborted) return stop();
        signal?.addEventListener("abort", stop, { once: true });
      },
      pull() {
        process.resumeOutput();
      },
      cancel() {
        stop();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_HIGH_WATER_BYTES }),
  );
}
