import { describe, expect, test } from "vitest";
import { OutputBuffer } from "./output-buffer.ts";

const small = () => new OutputBuffer({ headBytes: 8, tailBytes: 8, maxLineBytes: 5 });
const bytes = (text: string) => Buffer.from(text, "utf8");

describe("OutputBuffer", () => {
  test("keeps everything while under the caps", () => {
    const buffer = small();
    buffer.append(bytes("ab\n"));
    buffer.append(bytes("cd\n"));
    expect(buffer.snapshot()).toEqual({ text: "ab\ncd\n", omittedBytes: 0, linesCut: 0, truncated: false });
  });

  test("keeps the head and the tail and counts the bytes between", () => {
    const buffer = small();
    for (const line of ["1111\n", "2222\n", "3333\n", "4444\n", "5555\n"]) buffer.append(bytes(line));
    // 25 bytes: the head is the first 8, the tail the last 8
    const snapshot = buffer.snapshot();
    expect(snapshot.omittedBytes).toBe(25 - 16);
    expect(snapshot.text).toBe("1111\n222\n… [9 bytes omitted] …\n44\n5555\n");
    expect(snapshot.truncated).toBe(true);
  });

  test("gives the same result whatever the chunking", () => {
    const text = "alpha\nbe\nlonger line here\nx\n".repeat(5);
    const whole = small();
    whole.append(bytes(text));
    const byteWise = small();
    for (const byte of bytes(text)) byteWise.append(Uint8Array.of(byte));
    expect(byteWise.snapshot()).toEqual(whole.snapshot());
  });

  test("cuts long lines across chunks and marks how much was cut", () => {
    const buffer = new OutputBuffer({ headBytes: 1024, tailBytes: 1024, maxLineBytes: 5 });
    buffer.append(bytes("abc"));
    buffer.append(bytes("defgh"));
    buffer.append(bytes("ij\nok\n"));
    expect(buffer.snapshot()).toMatchObject({ text: "abcde… [5 bytes cut]\nok\n", linesCut: 1, truncated: true });
  });

  test("marks a cut line the process has not finished yet", () => {
    const buffer = new OutputBuffer({ headBytes: 1024, tailBytes: 1024, maxLineBytes: 3 });
    buffer.append(bytes("abcdef"));
    expect(buffer.snapshot().text).toBe("abc… [3 bytes cut]");
  });

  test("drops characters split at the omission instead of garbling them", () => {
    const buffer = new OutputBuffer({ headBytes: 5, tailBytes: 5, maxLineBytes: 1000 });
    buffer.append(bytes("éééééééééé")); // 20 bytes; head ends and tail starts mid-character
    const { text, omittedBytes } = buffer.snapshot();
    expect(omittedBytes).toBe(10);
    expect(text).not.toContain("\uFFFD");
    expect(text).toBe("éé\n… [10 bytes omitted] …\néé");
  });

  test("a chunk bigger than the tail replaces it", () => {
    const buffer = new OutputBuffer({ headBytes: 2, tailBytes: 4, maxLineBytes: 1000 });
    buffer.append(bytes("ab"));
    buffer.append(bytes("cd"));
    buffer.append(bytes("0123456789"));
    expect(buffer.snapshot()).toMatchObject({ text: "ab\n… [8 bytes omitted] …\n6789", omittedBytes: 8 });
  });
});
