import { StringDecoder } from "node:string_decoder";
import { LIMITS } from "../protocol.ts";

const NEWLINE = 0x0a;

export interface OutputLimits {
  headBytes: number;
  tailBytes: number;
  maxLineBytes: number;
}

export interface OutputSnapshot {
  text: string;
  /** Bytes dropped between the head and the tail. */
  omittedBytes: number;
  /** Lines shortened to the per-line cap. */
  linesCut: number;
  truncated: boolean;
}

/**
 * Bounded record of a process's combined output: the first `headBytes` and the
 * last `tailBytes` (a ring), with over-long lines cut before either is filled.
 * Memory stays at head + tail whatever the process prints.
 */
export class OutputBuffer {
  private readonly limits: OutputLimits;
  private readonly head: Buffer;
  private headLength = 0;
  private readonly tail: Buffer;
  private tailStart = 0;
  private tailLength = 0;
  private omitted = 0;
  private linesCut = 0;
  private lineLength = 0;
  /** Bytes dropped from the current line; -1 when the line is not being cut. */
  private droppedFromLine = -1;

  constructor(limits: OutputLimits = {
    headBytes: LIMITS.outputHeadBytes,
    tailBytes: LIMITS.outputTailBytes,
    maxLineBytes: LIMITS.outputMaxLineBytes,
  }) {
    this.limits = limits;
    this.head = Buffer.allocUnsafe(limits.headBytes);
    this.tail = Buffer.allocUnsafe(limits.tailBytes);
  }

  append(chunk: Uint8Array): void {
    // Contiguous runs of kept bytes are stored whole; only cut lines break a run.
    let runStart = 0;
    let position = 0;
    while (position < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, position);
      const end = newline === -1 ? chunk.length : newline;
      const segmentLength = end - position;

      if (this.droppedFromLine >= 0) {
        this.droppedFromLine += segmentLength;
        runStart = end;
      } else if (this.lineLength + segmentLength <= this.limits.maxLineBytes) {
        this.lineLength += segmentLength;
      } else {
        const keepEnd = characterStart(chunk, position, position + this.limits.maxLineBytes - this.lineLength);
        this.store(chunk.subarray(runStart, keepEnd));
        this.droppedFromLine = end - keepEnd;
        this.linesCut += 1;
        runStart = end;
      }

      if (newline !== -1) {
        if (this.droppedFromLine >= 0) {
          this.storeText(cutMarker(this.droppedFromLine));
          this.droppedFromLine = -1;
        }
        this.lineLength = 0;
      }
      position = end + 1;
    }
    if (runStart < chunk.length) this.store(chunk.subarray(runStart));
  }

  snapshot(): OutputSnapshot {
    const tail = this.orderedTail();
    let text: string;
    if (this.omitted === 0) {
      text = Buffer.concat([this.head.subarray(0, this.headLength), tail]).toString("utf8");
    } else {
      // Decode the two ends separately, dropping characters split by the gap.
      const headText = new StringDecoder("utf8").write(this.head.subarray(0, this.headLength));
      const tailText = tail.subarray(characterStart(tail, 0, Math.min(3, tail.length), true)).toString("utf8");
      text = `${headText}\n… [${this.omitted} bytes omitted] …\n${tailText}`;
    }
    if (this.droppedFromLine >= 0) text += cutMarker(this.droppedFromLine);
    return {
      text,
      omittedBytes: this.omitted,
      linesCut: this.linesCut,
      truncated: this.omitted > 0 || this.linesCut > 0,
    };
  }

  private storeText(text: string): void {
    this.store(Buffer.from(text, "utf8"));
  }

  private store(bytes: Uint8Array): void {
    let rest = bytes;
    if (this.headLength < this.head.length) {
      const taken = Math.min(rest.length, this.head.length - this.headLength);
      this.head.set(rest.subarray(0, taken), this.headLength);
      this.headLength += taken;
      rest = rest.subarray(taken);
    }
    if (rest.length > 0) this.pushTail(rest);
  }

  private pushTail(bytes: Uint8Array): void {
    const capacity = this.tail.length;
    if (capacity === 0) {
      this.omitted += bytes.length;
      return;
    }
    if (bytes.length >= capacity) {
      this.omitted += this.tailLength + bytes.length - capacity;
      this.tail.set(bytes.subarray(bytes.length - capacity));
      this.tailStart = 0;
      this.tailLength = capacity;
      return;
    }
    const overflow = Math.max(0, this.tailLength + bytes.length - capacity);
    const writeAt = (this.tailStart + this.tailLength) % capacity;
    const firstPart = Math.min(bytes.length, capacity - writeAt);
    this.tail.set(bytes.subarray(0, firstPart), writeAt);
    if (firstPart < bytes.length) this.tail.set(bytes.subarray(firstPart), 0);
    this.omitted += overflow;
    this.tailStart = (this.tailStart + overflow) % capacity;
    this.tailLength = Math.min(capacity, this.tailLength + bytes.length);
  }

  private orderedTail(): Buffer {
    const end = this.tailStart + this.tailLength;
    if (end <= this.tail.length) return this.tail.subarray(this.tailStart, end);
    return Buffer.concat([this.tail.subarray(this.tailStart), this.tail.subarray(0, end - this.tail.length)]);
  }
}

function cutMarker(droppedBytes: number): string {
  return `… [${droppedBytes} bytes cut]`;
}

/**
 * Finds where a UTF-8 character starts at or before `at` (or, with `forward`,
 * the first character start at or after `from`, looking no further than `at`).
 */
function characterStart(bytes: Uint8Array, from: number, at: number, forward = false): number {
  const isContinuation = (index: number) => ((bytes[index] ?? 0) & 0xc0) === 0x80;
  if (forward) {
    let index = from;
    while (index < at && isContinuation(index)) index += 1;
    return index;
  }
  let index = at;
  while (index > from && isContinuation(index)) index -= 1;
  return index;
}
