import { appendFile, chmod, mkdir, readdir, readFile, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect } from "vitest";
import type { EditFilesResponse, ListFilesResponse, ReadFileResponse } from "../protocol.ts";
import { descriptorsOpenOn, test } from "../testing/fixture.ts";

const lines = (count: number, make: (index: number) => string = (index) => `line ${index}`) =>
  Array.from({ length: count }, (_, index) => make(index + 1)).join("\n");

describe("GET /v1/files/read", () => {
  test("returns numbered lines and file facts", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "alpha\nbeta\ngamma\n");
    const { status, body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=a.txt");
    expect(status).toBe(200);
    expect(body).toEqual({
      path: join(root, "a.txt"),
      content: "     1\talpha\n     2\tbeta\n     3\tgamma",
      file_size: 17,
      total_lines: 3,
      lines_read: 3,
      offset: 1,
      truncated: false,
      lines_cut: 0,
    });
  });

  test("accepts absolute paths", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "x");
    const { body } = await daemon.call<ReadFileResponse>("GET", `/v1/files/read?path=${encodeURIComponent(join(root, "a.txt"))}`);
    expect(body.content).toBe("     1\tx");
  });

  test("pages with offset and limit and says where to continue", async ({ daemon, root }) => {
    await writeFile(join(root, "big.txt"), lines(100));
    const { body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=big.txt&offset=10&limit=5");
    expect(body.content.split("\n")).toEqual(["    10\tline 10", "    11\tline 11", "    12\tline 12", "    13\tline 13", "    14\tline 14"]);
    expect(body).toMatchObject({ total_lines: 100, lines_read: 5, offset: 10, truncated: true, truncation_reason: "line_limit", next_offset: 15 });

    const last = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=big.txt&offset=96&limit=5");
    expect(last.body).toMatchObject({ lines_read: 5, truncated: false });
    expect(last.body.truncation_reason).toBeUndefined();
  });

  test("reads at most 2000 lines by default", async ({ daemon, root }) => {
    await writeFile(join(root, "many.txt"), lines(2500, () => "x"));
    const { body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=many.txt");
    expect(body).toMatchObject({ total_lines: 2500, lines_read: 2000, truncated: true, truncation_reason: "line_limit", next_offset: 2001 });
  });

  test("rejects a limit over 2000 and a zero offset, naming the field", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "a");
    const overLimit = await daemon.call("GET", "/v1/files/read?path=a.txt&limit=2001");
    expect(overLimit.status).toBe(400);
    expect(overLimit.body).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "limit" }] } } });
    const zeroOffset = await daemon.call("GET", "/v1/files/read?path=a.txt&offset=0");
    expect(zeroOffset.body).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "offset" }] } } });
    const noPath = await daemon.call("GET", "/v1/files/read");
    expect(noPath.body).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "path" }] } } });
  });

  test("cuts lines over 1024 bytes with a marker", async ({ daemon, root }) => {
    await writeFile(join(root, "long.txt"), `short\n${"y".repeat(5000)}\nafter`);
    const { body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=long.txt");
    const [, long, after] = body.content.split("\n");
    expect(long).toBe(`     2\t${"y".repeat(1024)} … [line cut: 3976 more bytes]`);
    expect(after).toBe("     3\tafter");
    expect(body.lines_cut).toBe(1);
  });

  test("does not split a multi-byte character when cutting a line", async ({ daemon, root }) => {
    await writeFile(join(root, "wide.txt"), `a${"é".repeat(1000)}`); // 2001 bytes; byte 1024 is mid-character
    const { body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=wide.txt");
    expect(body.content).not.toContain("\uFFFD");
    expect(body.content.startsWith(`     1\ta${"é".repeat(511)} …`)).toBe(true);
  });

  test("stops adding lines at 32 KiB of content", async ({ daemon, root }) => {
    await writeFile(join(root, "wide.txt"), lines(200, () => "z".repeat(1000)));
    const { body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=wide.txt");
    expect(Buffer.byteLength(body.content)).toBeLessThanOrEqual(32 * 1024);
    expect(body.lines_read).toBe(32); // each numbered line is 1008 bytes with its newline
    expect(body).toMatchObject({ truncated: true, truncation_reason: "byte_limit", next_offset: 33, total_lines: 200 });
  });

  test("refuses files over 1 MiB with 413, giving size and limit", async ({ daemon, root }) => {
    await writeFile(join(root, "huge.txt"), "a".repeat(1024 * 1024 + 1));
    const { status, body } = await daemon.call("GET", "/v1/files/read?path=huge.txt");
    expect(status).toBe(413);
    expect(body).toMatchObject({ error: { code: "file_too_large", details: { size: 1024 * 1024 + 1, limit: 1024 * 1024 } } });
    expect((body as { error: { message: string } }).error.message).toMatch(/offset and limit.*raw read/);
  });

  test("pages through a file over 1 MiB when given offset and limit", async ({ daemon, root }) => {
    // 150 000 lines of 21 bytes = 3.15 MB, with one 5000-byte line in the middle
    const content = Array.from({ length: 150_000 }, (_, index) => (index === 100_001 ? "w".repeat(5000) : `line ${String(index + 1).padStart(15, "0")}`));
    await writeFile(join(root, "big.log"), `${content.join("\n")}\n`);

    const page = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=big.log&offset=100000&limit=4");
    expect(page.status).toBe(200);
    expect(page.body).toMatchObject({ total_lines: 150_000, lines_read: 4, offset: 100_000, truncated: true, next_offset: 100_004, lines_cut: 1 });
    expect(page.body.content.split("\n")).toEqual([
      `100000\tline ${"100000".padStart(15, "0")}`,
      `100001\tline ${"100001".padStart(15, "0")}`,
      `100002\t${"w".repeat(1024)} … [line cut: 3976 more bytes]`,
      `100003\tline ${"100003".padStart(15, "0")}`,
    ]);

    const tail = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=big.log&offset=149999");
    expect(tail.body).toMatchObject({ lines_read: 2, truncated: false });
    expect(tail.body.content).toBe(`149999\tline ${"149999".padStart(15, "0")}\n150000\tline ${"150000".padStart(15, "0")}`);

    const beyond = await daemon.call("GET", "/v1/files/read?path=big.log&offset=150001");
    expect(beyond.body).toMatchObject({ error: { code: "invalid_offset", details: { total_lines: 150_000 } } });
  });

  test("refuses line reads of files over 256 MiB even with a range", async ({ daemon, root }) => {
    await writeFile(join(root, "sparse"), "");
    await truncate(join(root, "sparse"), 300 * 1024 * 1024); // sparse: no disk used
    const { status, body } = await daemon.call("GET", "/v1/files/read?path=sparse&offset=1&limit=10");
    expect(status).toBe(413);
    expect(body).toMatchObject({ error: { code: "file_too_large", details: { size: 300 * 1024 * 1024, limit: 256 * 1024 * 1024 } } });
  });

  test("reports missing files, directories, binary files and offsets past the end", async ({ daemon, root }) => {
    await writeFile(join(root, "three.txt"), "1\n2\n3\n");
    await writeFile(join(root, "image.bin"), Buffer.from([0x89, 0x50, 0x00, 0x47]));
    const missing = await daemon.call("GET", "/v1/files/read?path=nope.txt");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: "not_found" } });

    const directory = await daemon.call("GET", "/v1/files/read?path=.");
    expect(directory.status).toBe(400);
    expect(directory.body).toMatchObject({ error: { code: "is_directory" } });

    const binary = await daemon.call("GET", "/v1/files/read?path=image.bin");
    expect(binary.status).toBe(400);
    expect(binary.body).toMatchObject({ error: { code: "binary_file" } });

    const beyond = await daemon.call("GET", "/v1/files/read?path=three.txt&offset=4");
    expect(beyond.status).toBe(400);
    expect(beyond.body).toMatchObject({ error: { code: "invalid_offset", details: { offset: 4, total_lines: 3 } } });
  });

  test("reads an empty file as no lines", async ({ daemon, root }) => {
    await writeFile(join(root, "empty.txt"), "");
    const { status, body } = await daemon.call<ReadFileResponse>("GET", "/v1/files/read?path=empty.txt");
    expect(status).toBe(200);
    expect(body).toMatchObject({ content: "", total_lines: 0, lines_read: 0, truncated: false });
  });
});

describe("/v1/files/raw", () => {
  test("streams a 5 MiB file byte for byte", async ({ daemon, root }) => {
    const bytes = Buffer.alloc(5 * 1024 * 1024);
    for (let index = 0; index < bytes.length; index += 1) bytes[index] = (index * 31) & 0xff;
    await writeFile(join(root, "blob.bin"), bytes);
    const response = await daemon.app.request("/v1/files/raw?path=blob.bin");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/octet-stream");
    expect(response.headers.get("content-length")).toBe(String(bytes.length));
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
  });

  test("reads an empty file and reports a missing one", async ({ daemon, root }) => {
    await writeFile(join(root, "empty"), "");
    const empty = await daemon.app.request("/v1/files/raw?path=empty");
    expect(empty.status).toBe(200);
    expect((await empty.arrayBuffer()).byteLength).toBe(0);
    const missing = await daemon.app.request("/v1/files/raw?path=missing");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
  });

  test("stops at the size it announced when the file grows, and closes the file at the end", async ({ daemon, root }) => {
    const path = join(root, "growing.log");
    await writeFile(path, Buffer.alloc(600 * 1024, "a"));
    const response = await daemon.app.request("/v1/files/raw?path=growing.log");
    expect(response.headers.get("content-length")).toBe(String(600 * 1024));
    await appendFile(path, "more");
    const body = Buffer.from(await response.arrayBuffer());
    expect([body.length, body.includes("more")]).toEqual([600 * 1024, false]);
    expect(await descriptorsOpenOn(path)).toBe(0);
  });

  test("fails the body when the file shrinks under it", async ({ daemon, root }) => {
    const path = join(root, "shrinking.bin");
    await writeFile(path, Buffer.alloc(4 * 1024 * 1024, 1));
    const response = await daemon.app.request("/v1/files/raw?path=shrinking.bin");
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let received = (await reader.read()).value?.length ?? 0;
    await truncate(path, 0);
    const rest = (async () => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) received += chunk.value.length;
    })();
    await expect(rest).rejects.toThrow(`${path} shrank to`);
    expect(received).toBeLessThan(4 * 1024 * 1024);
    expect(await descriptorsOpenOn(path)).toBe(0);
  });

  test("HEAD answers the length and leaves no file open", async ({ daemon, root }) => {
    const path = join(root, "head.bin");
    await writeFile(path, Buffer.alloc(300 * 1024, 3));
    const response = await daemon.app.request("/v1/files/raw?path=head.bin", { method: "HEAD" });
    expect([response.status, response.headers.get("content-length"), response.body]).toEqual([200, String(300 * 1024), null]);
    expect(await descriptorsOpenOn(path)).toBe(0);
    expect((await daemon.app.request("/v1/files/raw?path=gone.bin", { method: "HEAD" })).status).toBe(404);
  });

  test("closes the file when the reader cancels mid-stream", async ({ daemon, root }) => {
    const path = join(root, "big.bin");
    await writeFile(path, Buffer.alloc(4 * 1024 * 1024, 2));
    const response = await daemon.app.request("/v1/files/raw?path=big.bin");
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    expect(await descriptorsOpenOn(path)).toBe(1);
    await reader.cancel();
    expect(await descriptorsOpenOn(path)).toBe(0);
  });

  test("PUT writes the body into new directories with the given mode", async ({ daemon, root }) => {
    const bytes = Buffer.from([0, 1, 2, 255]);
    const response = await daemon.app.request("/v1/files/raw?path=deep/dir/tool.sh&mode=0770", { method: "PUT", body: bytes });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ path: join(root, "deep/dir/tool.sh"), bytes_written: 4 });
    expect((await readFile(join(root, "deep/dir/tool.sh"))).equals(bytes)).toBe(true);
    expect((await stat(join(root, "deep/dir/tool.sh"))).mode & 0o7777).toBe(0o770);
  });

  test("PUT streams a request body and keeps the existing mode", async ({ daemon, root }) => {
    const target = join(root, "run.sh");
    await writeFile(target, "old");
    await chmod(target, 0o775);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("#!/bin/sh\n"));
        controller.enqueue(new TextEncoder().encode("echo hi\n"));
        controller.close();
      },
    });
    const response = await daemon.app.request("/v1/files/raw?path=run.sh", { method: "PUT", body, duplex: "half" } as RequestInit);
    expect(await response.json()).toMatchObject({ bytes_written: 18 });
    expect(await readFile(target, "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect((await stat(target)).mode & 0o7777).toBe(0o775);
    expect(await readdir(root)).toEqual(["run.sh"]); // no temp file left behind
  });

  test("PUT rejects a malformed mode", async ({ daemon }) => {
    const response = await daemon.app.request("/v1/files/raw?path=x&mode=rwx", { method: "PUT", body: "x" });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "mode" }] } } });
  });
});

describe("POST /v1/files/write", () => {
  test("creates parent directories and says the file was created", async ({ daemon, root }) => {
    const { status, body } = await daemon.call("POST", "/v1/files/write", { path: "src/new/file.ts", content: "export {};\n" });
    expect(status).toBe(200);
    expect(body).toEqual({ path: join(root, "src/new/file.ts"), bytes_written: 11, created: true });
    expect(await readFile(join(root, "src/new/file.ts"), "utf8")).toBe("export {};\n");
  });

  test("replaces an existing file, keeping its mode and leaving no temp file", async ({ daemon, root }) => {
    const target = join(root, "script.sh");
    await writeFile(target, "echo old\n");
    await chmod(target, 0o767); // bits a umask would strip
    const { body } = await daemon.call("POST", "/v1/files/write", { path: "script.sh", content: "echo né\n" });
    expect(body).toEqual({ path: target, bytes_written: 9, created: false });
    expect(await readFile(target, "utf8")).toBe("echo né\n");
    expect((await stat(target)).mode & 0o7777).toBe(0o767);
    expect(await readdir(root)).toEqual(["script.sh"]);
  });

  test("writes through a symlink to its target", async ({ daemon, root }) => {
    await writeFile(join(root, "real.txt"), "old");
    await symlink("real.txt", join(root, "link.txt"));
    await daemon.call("POST", "/v1/files/write", { path: "link.txt", content: "new" });
    expect(await readFile(join(root, "real.txt"), "utf8")).toBe("new");
    expect((await readdir(root, { withFileTypes: true })).find((entry) => entry.name === "link.txt")?.isSymbolicLink()).toBe(true);
  });

  test("rejects bad bodies, directories and paths under a file", async ({ daemon, root }) => {
    await mkdir(join(root, "dir"));
    await writeFile(join(root, "file"), "");
    const notJson = await daemon.app.request("/v1/files/write", { method: "POST", body: "{", headers: { "content-type": "application/json" } });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { code: "invalid_request" } });

    const noContent = await daemon.call("POST", "/v1/files/write", { path: "a" });
    expect(noContent.body).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "content" }] } } });

    const directory = await daemon.call("POST", "/v1/files/write", { path: "dir", content: "" });
    expect(directory.body).toMatchObject({ error: { code: "is_directory" } });

    const underFile = await daemon.call("POST", "/v1/files/write", { path: "file/child", content: "" });
    expect(underFile.status).toBe(400);
    expect(underFile.body).toMatchObject({ error: { code: "not_directory" } });
  });
});

describe("POST /v1/files/edit", () => {
  test("applies edits in order, several per file, and returns a diff per file", async ({ daemon, root }) => {
    await writeFile(join(root, "a.ts"), "const a = 1;\nconst b = 2;\n");
    await writeFile(join(root, "b.ts"), "hello\n");
    const { status, body } = await daemon.call<EditFilesResponse>("POST", "/v1/files/edit", {
      edits: [
        { path: "a.ts", old_text: "const a = 1;", new_text: "const a = 10;" },
        { path: "b.ts", old_text: "hello", new_text: "goodbye $& $1" },
        { path: "a.ts", old_text: "a = 10", new_text: "a = 100" },
      ],
    });
    expect(status).toBe(200);
    expect(await readFile(join(root, "a.ts"), "utf8")).toBe("const a = 100;\nconst b = 2;\n");
    expect(await readFile(join(root, "b.ts"), "utf8")).toBe("goodbye $& $1\n");
    expect(body.files.map((file) => [file.path, file.replacements])).toEqual([
      [join(root, "a.ts"), 2],
      [join(root, "b.ts"), 1],
    ]);
    const diff = body.files[0]?.diff ?? "";
    expect(diff).toContain(`--- ${join(root, "a.ts")}`);
    expect(diff).toContain("-const a = 1;\n+const a = 100;\n const b = 2;");
  });

  test("replace_all replaces every occurrence and counts them", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "foo bar foo baz foo");
    const { body } = await daemon.call<EditFilesResponse>("POST", "/v1/files/edit", {
      edits: [{ path: "a.txt", old_text: "foo", new_text: "qux", replace_all: true }],
    });
    expect(body.files[0]?.replacements).toBe(3);
    expect(await readFile(join(root, "a.txt"), "utf8")).toBe("qux bar qux baz qux");
  });

  test("writes nothing when a later edit fails", async ({ daemon, root }) => {
    await writeFile(join(root, "first.txt"), "one\n");
    await writeFile(join(root, "second.txt"), "two\n");
    const { status, body } = await daemon.call("POST", "/v1/files/edit", {
      edits: [
        { path: "first.txt", old_text: "one", new_text: "ONE" },
        { path: "second.txt", old_text: "three", new_text: "THREE" },
      ],
    });
    expect(status).toBe(400);
    expect(body).toMatchObject({ error: { code: "no_match", details: { edit_index: 1, path: join(root, "second.txt") } } });
    expect(await readFile(join(root, "first.txt"), "utf8")).toBe("one\n");
    expect((await readdir(root)).sort()).toEqual(["first.txt", "second.txt"]);
  });

  test("requires a unique match unless replace_all", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "x = 1\nx = 1\n");
    const { status, body } = await daemon.call("POST", "/v1/files/edit", {
      edits: [{ path: "a.txt", old_text: "x = 1", new_text: "x = 2" }],
    });
    expect(status).toBe(400);
    expect(body).toMatchObject({ error: { code: "multiple_matches", details: { edit_index: 0, match_count: 2 } } });
    expect(await readFile(join(root, "a.txt"), "utf8")).toBe("x = 1\nx = 1\n");
  });

  test("checks each edit against the text the earlier edits left", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "alpha\n");
    const { body } = await daemon.call("POST", "/v1/files/edit", {
      edits: [
        { path: "a.txt", old_text: "alpha", new_text: "beta" },
        { path: "a.txt", old_text: "alpha", new_text: "gamma" },
      ],
    });
    expect(body).toMatchObject({ error: { code: "no_match", details: { edit_index: 1 } } });
    expect(await readFile(join(root, "a.txt"), "utf8")).toBe("alpha\n");
  });

  test("reports a missing file as 404 with the edit's index", async ({ daemon, root }) => {
    await writeFile(join(root, "a.txt"), "a");
    const { status, body } = await daemon.call("POST", "/v1/files/edit", {
      edits: [
        { path: "a.txt", old_text: "a", new_text: "b" },
        { path: "gone.txt", old_text: "a", new_text: "b" },
      ],
    });
    expect(status).toBe(404);
    expect(body).toMatchObject({ error: { code: "not_found", details: { edit_index: 1, path: join(root, "gone.txt") } } });
    expect(await readFile(join(root, "a.txt"), "utf8")).toBe("a");
  });

  test("rejects identical old and new text and an empty batch", async ({ daemon }) => {
    const same = await daemon.call("POST", "/v1/files/edit", { edits: [{ path: "a", old_text: "x", new_text: "x" }] });
    expect(same.status).toBe(400);
    expect(same.body).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "edits.0.new_text" }] } } });
    const empty = await daemon.call("POST", "/v1/files/edit", { edits: [] });
    expect(empty.body).toMatchObject({ error: { code: "invalid_request", details: { issues: [{ path: "edits" }] } } });
  });

  test("keeps the edited file's mode", async ({ daemon, root }) => {
    await writeFile(join(root, "run.sh"), "echo a\n");
    await chmod(join(root, "run.sh"), 0o766);
    await daemon.call("POST", "/v1/files/edit", { edits: [{ path: "run.sh", old_text: "a", new_text: "b" }] });
    expect((await stat(join(root, "run.sh"))).mode & 0o7777).toBe(0o766);
  });
});

describe("GET /v1/files/list", () => {
  test("lists entries sorted by name with type, size, mode and time", async ({ daemon, root }) => {
    await writeFile(join(root, "b.txt"), "12345");
    await chmod(join(root, "b.txt"), 0o640);
    await mkdir(join(root, "a-dir"));
    await symlink("b.txt", join(root, "c-link"));
    await writeFile(join(root, "B.txt"), "");
    const { status, body } = await daemon.call<ListFilesResponse>("GET", "/v1/files/list?path=.");
    expect(status).toBe(200);
    expect(body.path).toBe(root);
    expect(body.entries.map((entry) => [entry.name, entry.type])).toEqual([
      ["B.txt", "file"],
      ["a-dir", "directory"],
      ["b.txt", "file"],
      ["c-link", "symlink"],
    ]);
    const file = body.entries.find((entry) => entry.name === "b.txt");
    expect(file).toMatchObject({ size: 5, mode: "0640" });
    expect(Date.now() - Date.parse(file?.modified_at ?? "")).toBeLessThan(60_000);
  });

  test("reports a missing path and a file", async ({ daemon, root }) => {
    await writeFile(join(root, "f"), "");
    const missing = await daemon.call("GET", "/v1/files/list?path=nope");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: "not_found" } });
    const file = await daemon.call("GET", "/v1/files/list?path=f");
    expect(file.status).toBe(400);
    expect(file.body).toMatchObject({ error: { code: "not_directory" } });
  });
});
