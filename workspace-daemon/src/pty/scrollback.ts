/**
 * The last `capacity` bytes a terminal printed, replayed to a viewer that attaches.
 * Chunks are kept as they came and dropped whole from the front; the oldest one kept
 * is cut so the total never exceeds the capacity.
 */
export class Scrollback {
  readonly #capacity: number;
  #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get bytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length >= this.#capacity) {
      this.#chunks = [Buffer.from(chunk.subarray(chunk.length - this.#capacity))];
      this.#bytes = this.#capacity;
      return;
    }
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes > this.#capacity) {
      const first = this.#chunks[0]!;
      const excess = this.#bytes - this.#capacity;
      if (first.length <= excess) {
        this.#chunks.shift();
        this.#bytes -= first.length;
      } else {
        this.#chunks[0] = first.subarray(excess);
        this.#bytes -= excess;
      }
    }
  }

  snapshot(): Buffer {
    const joined = Buffer.concat(this.#chunks, this.#bytes);
    // Keep one chunk so repeated snapshots do not copy again.
    this.#chunks = joined.length > 0 ? [joined] : [];
    return joined;
  }
}
