import { stat as statFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startInteractiveDaemon, type InteractiveDaemon } from "../testing/interactive-daemon.ts";
import ssh2Module from "ssh2";
import { generateHostKey, HOST_KEY_FILE, loadOrCreateHostKey, publicKeyLine } from "./host-key.ts";

describe("host key", () => {
  test("is generated once with mode 0600 and reused", async () => {
    const directory = await mkdtemp(join(tmpdir(), "kiln-hostkey-"));
    const first = await loadOrCreateHostKey(join(directory, "state"));
    const second = await loadOrCreateHostKey(join(directory, "state"));
    expect(second.equals(first)).toBe(true);
    expect((await statFile(join(directory, "state", HOST_KEY_FILE))).mode & 0o777).toBe(0o600);
    expect(publicKeyLine(first)).toMatch(/^ssh-ed25519 AAAA/);
    // An unusable key left by an older daemon is replaced.
    await writeFile(join(directory, "state", HOST_KEY_FILE), "-----BEGIN OPENSSH PRIVATE KEY-----\nbroken\n-----END OPENSSH PRIVATE KEY-----\n");
    const replaced = await loadOrCreateHostKey(join(directory, "state"));
    expect(ssh2Module.utils.parseKey(replaced)).not.toBeInstanceOf(Error);
    await rm(directory, { recursive: true, force: true });
  });

  test("every generated key parses (ssh2's generator alone breaks about 1 in 300)", () => {
    for (let index = 0; index < 1500; index++) expect(ssh2Module.utils.parseKey(generateHostKey())).not.toBeInstanceOf(Error);
  });
});

describe("SSH server over a tunnel stream", () => {
  let root: string;
  let daemon: InteractiveDaemon;
  let client: ssh2.Client;
  let hostKey: Buffer | undefined;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "kiln-ssh-"));
    daemon = await startInteractiveDaemon(root, join(root, ".kiln"));
    const { status, stream } = await daemon.open("/v1/ssh");
    expect(status).toBe(200);
    client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.once("ready", () => resolve());
      client.once("error", reject);
      client.connect({ sock: stream, username: "anyone", hostVerifier: (key: Buffer) => {
        hostKey = key;
        return true;
      } });
    });
  });
  afterEach(async () => {
    client.end();
    await daemon.close();
    await rm(root, { recursive: true, force: true });
  });

  const exec = (command: string, options: ssh2.ExecOptions = {}) =>
    new Promise<{ stdout: string; stderr: string; code: number | null; signal: string | null }>((resolve, reject) => {
      client.exec(command, options, (error, channel) => {
        if (error) return reject(error);
        let stdout = "";
        let stderr = "";
        let code: number | null = null;
        let signal: string | null = null;
        channel.on("data", (chunk: Buffer) => (stdout += chunk));
        channel.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
        channel.on("exit", (exitCode: number | null, exitSignal?: string) => {
          code = exitCode;
          signal = exitSignal ?? null;
        });
        channel.on("close", () => resolve({ stdout, stderr, code, signal }));
      });
    });

  test("runs commands with their exit code, stderr, environment and working directory", async () => {
    const result = await exec("echo out; echo err >&2; echo $GREETING; pwd; exit 3", { env: { GREETING: "hello-env" } });
    expect(result).toMatchObject({ stdout: `out\nhello-env\n${root}\n`, stderr: "err\n", code: 3 });
    expect((await exec("kill -TERM $$")).signal).toBe("SIGTERM");
    expect(hostKey).toBeDefined();
  });

  test("runs a command in a PTY with the requested size", async () => {
    const result = await exec("stty size; tty", { pty: { rows: 33, cols: 111, term: "xterm" } });
    expect(result.stdout).toMatch(/^33 111\r\n\/dev\/pts\/\d+\r\n$/);
    expect(result.code).toBe(0);
  });

  test("serves sftp: write, read, stat, list, rename, remove", async () => {
    const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((error, session) => (error ? reject(error) : resolve(session))));
    const payload = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let index = 0; index < payload.length; index++) payload[index] = (index * 31) % 251;
    await writeFile(join(root, "local.bin"), payload);
    await new Promise<void>((resolve, reject) => sftp.fastPut(join(root, "local.bin"), "uploaded.bin", (error) => (error ? reject(error) : resolve())));
    expect((await readFile(join(root, "uploaded.bin"))).equals(payload)).toBe(true);
    await new Promise<void>((resolve, reject) => sftp.fastGet("uploaded.bin", join(root, "downloaded.bin"), (error) => (error ? reject(error) : resolve())));
    expect((await readFile(join(root, "downloaded.bin"))).equals(payload)).toBe(true);

    const stats = await new Promise<ssh2.Stats>((resolve, reject) => sftp.stat("uploaded.bin", (error, result) => (error ? reject(error) : resolve(result))));
    expect(stats.size).toBe(payload.length);
    await new Promise<void>((resolve, reject) => sftp.rename("uploaded.bin", "renamed.bin", (error) => (error ? reject(error) : resolve())));
    await new Promise<void>((resolve, reject) => sftp.mkdir("sub", (error) => (error ? reject(error) : resolve())));
    const names = await new Promise<string[]>((resolve, reject) => sftp.readdir(".", (error, list) => (error ? reject(error) : resolve(list.map((entry) => entry.filename)))));
    expect(names).toEqual(expect.arrayContaining(["renamed.bin", "sub", "local.bin"]));
    expect(names).not.toContain("uploaded.bin");
    await new Promise<void>((resolve, reject) => sftp.unlink("renamed.bin", (error) => (error ? reject(error) : resolve())));
    const missing = await new Promise<Error | undefined>((resolve) => sftp.stat("renamed.bin", (error) => resolve(error ?? undefined)));
    expect(missing?.message).toMatch(/No such file/);
  });
});
