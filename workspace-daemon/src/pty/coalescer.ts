/**
 * Gathers small chunks (a PTY hands over at most ~4 KiB per read) until the event loop has
 * nothing else to do, or `limit` bytes piled up, and hands them on as one chunk. Every hop
 * after the terminal (HTTP/2, WebSocket, SSH, the browser) then handles a few large writes
 * instead of many small ones, while an isolated keystroke echo still leaves in the same turn
 * of the loop.
 */
export class Coalescer {
  readonly #deliver: (chunk: Buffer) => void;
  readonly #limit: number;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #scheduled = false;

  constructor(deliver: (chunk: Buffer) => void, limit = 64 * 1024) {
    this.#deliver = deliver;
    this.#limit = limit;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes >= this.#limit) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Delivers what is pending now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#bytes === 0) return;
    const chunk = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks = [];
    this.#bytes = 0;
    this.#deliver(chunk);
  }
}
