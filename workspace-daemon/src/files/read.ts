import { closeSync, constants, fstatSync, openSync, read, readSync, type Stats } from "node:fs";
import { promisify } from "node:util";
import { fileSystemError, InvalidRequestError, PayloadTooLargeError } from "../errors.ts";
import { LIMITS, type ReadFileRequest, type ReadFileResponse, type ReadTruncationReason } from "../protocol.ts";
import { resolvePath } from "./paths.ts";

const readInto = promisify(read);

const NEWLINE = 0x0a;
const LINE_NUMBER_WIDTH = 6;
/** Budget for ` … [line cut: N more bytes]` (the ellipsis is 3 bytes, N under a million). */
const MAX_CUT_MARKER_BYTES = 40;
const SCAN_CHUNK_BYTES = 256 * 1024;
/**
 * Files up to this size are read with blocking calls. Each asynchronous fs call is a round trip
 * through libuv's thread pool (futexes, an eventfd, an epoll wake-up), which costs far more than
 * reading a few KiB from the page cache; see docs/benchmarks.md, "Spine". Bigger files are read
 * asynchronously so one large read cannot stall every other request.
 */
export const SYNC_READ_MAX_BYTES = 64 * 1024;

/**
 * Opens a regular file for reading and stats it once; the caller closes `fd` (closeSync).
 * Blocking calls: open and fstat are metadata operations, cheaper inline than through the thread pool.
 * O_NONBLOCK keeps a FIFO from blocking the open; non-regular files are refused anyway.
 */
export function openRegularFile(path: string): { fd: number; stats: Stats } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw fileSystemError(error, path);
  }
  try {
    const stats = fstatSync(fd);
    if (stats.isDirectory()) throw new InvalidRequestError("is_directory", `path is a directory: ${path}`, { path });
    if (!stats.isFile()) throw new InvalidRequestError("invalid_request", `not a regular file: ${path}`, { path });
    return { fd, stats };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Reads a page of a text file with `cat -n` style line numbers. */
export async function readFile(root: string, request: ReadFileRequest): Promise<ReadFileResponse> {
  const path = resolvePath(root, request.path);
  const offset = request.offset ?? 1;
  const limit = request.limit ?? LIMITS.readDefaultLines;
  const ranged = request.offset !== undefined || request.limit !== undefined;
  const { fd, stats } = openRegularFile(path);
  try {
    const size = stats.size;
    if (size > LIMITS.readMaxScanBytes || (size > LIMITS.readMaxFileBytes && !ranged)) {
      const limitBytes = ranged ? LIMITS.readMaxScanBytes : LIMITS.readMaxFileBytes;
      throw new PayloadTooLargeError(
        "file_too_large",
        ranged
          ? `file is ${size} bytes, over the ${limitBytes} byte limit for line reads; use the raw read endpoint, or a command such as sed -n or tail`
          : `file is ${size} bytes, over the ${limitBytes} byte limit for reading a whole file; read a range with offset and limit, or use the raw read endpoint`,
        { path, size, limit: limitBytes },
      );
    }
    if (size <= LIMITS.readMaxFileBytes) {
      const buffer = size <= SYNC_READ_MAX_BYTES ? readRangeSync(fd, 0, size) : await readRange(fd, 0, size);
      rejectBinary(path, buffer);
      const selection = new PageSelection(offset, limit);
      selectLines(buffer, 0, selection);
      selection.end(buffer.length);
      return respond(path, buffer.length, selection, renderLines(buffer, 0, selection.lines));
    }
    return await readLargeFile(path, fd, size, offset, limit);
  } finally {
    closeSync(fd);
  }
}

/**
 * A page of a file too big to hold: one pass counts lines and picks the page by
 * byte offsets without keeping content, then only the page's bytes are read.
 */
async function readLargeFile(path: string, fd: number, size: number, offset: number, limit: number): Promise<ReadFileResponse> {
  const selection = new PageSelection(offset, limit);
  const chunk = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
  for (let position = 0; position < size; ) {
    const { bytesRead } = await readInto(fd, chunk, 0, Math.min(SCAN_CHUNK_BYTES, size - position), position);
    if (bytesRead === 0) break;
    if (position === 0) rejectBinary(path, chunk.subarray(0, bytesRead));
    selectLines(chunk.subarray(0, bytesRead), position, selection);
    position += bytesRead;
  }
  selection.end(size);

  // Uncut lines are read as contiguous runs; a cut line needs only its head (plus one byte to find a character boundary).
  const texts: string[] = [];
  let run: PageLine[] = [];
  const flush = async () => {
    if (run.length === 0) return;
    const first = run[0] as PageLine;
    const last = run[run.length - 1] as PageLine;
    const end = last.cut ? last.start + Math.min(last.bytes, LIMITS.readMaxLineBytes + 1) : last.start + last.bytes;
    texts.push(...renderLines(await readRange(fd, first.start, end - first.start), first.start, run));
    run = [];
  };
  for (const line of selection.lines) {
    if (line.cut) await flush();
    run.push(line);
    if (line.cut) await flush();
  }
  await flush();
  return respond(path, size, selection, texts);
}

async function readRange(fd: number, start: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await readInto(fd, buffer, filled, length - filled, start + filled);
    if (bytesRead === 0) break; // the file shrank after the stat
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

function readRangeSync(fd: number, start: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const bytesRead = readSync(fd, buffer, filled, length - filled, start + filled);
    if (bytesRead === 0) break; // the file shrank after the stat
    filled += bytesRead;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

function rejectBinary(path: string, head: Buffer): void {
  if (!head.subarray(0, LIMITS.binarySniffBytes).includes(0)) return;
  throw new InvalidRequestError("binary_file", `file looks binary (contains NUL bytes); use the raw read endpoint: ${path}`, { path });
}

interface PageLine {
  number: number;
  /** Byte offset of the line in the file. */
  start: number;
  /** Length without the newline. */
  bytes: number;
  cut: boolean;
}

/** Picks the lines of a page as the file's lines go by, within the line limit and the byte budget. */
class PageSelection {
  readonly lines: PageLine[] = [];
  totalLines = 0;
  stoppedBy: ReadTruncationReason | undefined;
  private contentBytes = 0;
  /** File offset where the line being scanned starts. */
  lineStart = 0;

  constructor(
    readonly offset: number,
    private readonly limit: number,
  ) {}

  /** Records the line from `lineStart` to `end` (exclusive, the newline's offset or the end of file). */
  add(end: number): void {
    this.totalLines += 1;
    const start = this.lineStart;
    this.lineStart = end + 1;
    if (this.totalLines < this.offset || this.stoppedBy !== undefined) return;
    if (this.lines.length === this.limit) {
      this.stoppedBy = "line_limit";
      return;
    }
    const bytes = end - start;
    const cut = bytes > LIMITS.readMaxLineBytes;
    // The numbered line plus its separating newline; a cut line counts at its cap plus the marker.
    const cost =
      lineNumberPrefix(this.totalLines).length + (cut ? LIMITS.readMaxLineBytes + MAX_CUT_MARKER_BYTES : bytes) + (this.lines.length === 0 ? 0 : 1);
    if (this.contentBytes + cost > LIMITS.readMaxResponseBytes) {
      this.stoppedBy = "byte_limit";
      return;
    }
    this.lines.push({ number: this.totalLines, start, bytes, cut });
    this.contentBytes += cost;
  }

  /** Closes the last line if the file does not end with a newline. */
  end(fileSize: number): void {
    if (this.lineStart < fileSize) this.add(fileSize);
  }
}

/** Feeds the lines ending in `chunk` (which starts at file offset `chunkStart`) to the selection. */
function selectLines(chunk: Buffer, chunkStart: number, selection: PageSelection): void {
  let newline = chunk.indexOf(NEWLINE);
  while (newline !== -1) {
    selection.add(chunkStart + newline);
    newline = chunk.indexOf(NEWLINE, newline + 1);
  }
}

/** Numbered text of `lines`, all inside `buffer`, which starts at file offset `bufferStart`. */
function renderLines(buffer: Buffer, bufferStart: number, lines: PageLine[]): string[] {
  if (lines.length === 0) return [];
  const first = lines[0] as PageLine;
  const last = lines[lines.length - 1] as PageLine;
  if (!lines.some((line) => line.cut)) {
    // Decode once and split: much cheaper than a decode per line.
    const texts = buffer.toString("utf8", first.start - bufferStart, last.start + last.bytes - bufferStart).split("\n");
    return texts.map((text, index) => lineNumberPrefix((lines[index] as PageLine).number) + text);
  }
  return lines.map((line) => {
    const start = line.start - bufferStart;
    if (!line.cut) return lineNumberPrefix(line.number) + buffer.toString("utf8", start, start + line.bytes);
    const kept = utf8Boundary(buffer, start, start + LIMITS.readMaxLineBytes) - start;
    return `${lineNumberPrefix(line.number)}${buffer.toString("utf8", start, start + kept)} … [line cut: ${line.bytes - kept} more bytes]`;
  });
}

function respond(path: string, fileSize: number, selection: PageSelection, texts: string[]): ReadFileResponse {
  if (selection.offset > Math.max(selection.totalLines, 1)) {
    throw new InvalidRequestError(
      "invalid_offset",
      `offset ${selection.offset} is beyond the end of the file (${selection.totalLines} lines)`,
      { path, offset: selection.offset, total_lines: selection.totalLines },
    );
  }
  const response: ReadFileResponse = {
    path,
    content: texts.join("\n"),
    file_size: fileSize,
    total_lines: selection.totalLines,
    lines_read: texts.length,
    offset: selection.offset,
    truncated: selection.stoppedBy !== undefined,
    lines_cut: selection.lines.filter((line) => line.cut).length,
  };
  if (selection.stoppedBy !== undefined) {
    response.truncation_reason = selection.stoppedBy;
    response.next_offset = selection.offset + texts.length;
  }
  return response;
}

function lineNumberPrefix(lineNumber: number): string {
  return `${String(lineNumber).padStart(LINE_NUMBER_WIDTH)}\t`;
}

/** Moves `end` back so `[start, end)` does not split a UTF-8 character. */
export function utf8Boundary(buffer: Buffer, start: number, end: number): number {
  let boundary = end;
  // Continuation bytes look like 10xxxxxx; the character starts before them.
  while (boundary > start && ((buffer[boundary] ?? 0) & 0xc0) === 0x80) boundary -= 1;
  return boundary;
}
