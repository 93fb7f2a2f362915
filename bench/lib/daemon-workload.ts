// What the spine and tailnet benchmarks do to a workspace daemon, and the loopback baselines they compare it with.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { AgentConnection } from "../../tailnet/src/index.ts";
import type { Resources } from "./resources.ts";
import type { LoopbackPorts } from "../spine/loopback-peer.ts";

const loopbackPeer = resolve(dirname(fileURLToPath(import.meta.url)), "../spine/loopback-peer.ts");

export const READ_FILE = "read-4k.ts";
export const READ_FILE_BYTES = 4 * 1024;
export const STREAM_FILE = "stream-64m.bin";
export const STREAM_FILE_BYTES = 64 * 1024 * 1024;

/** Child processes written in TypeScript load tsx explicitly, so this works however the bench itself was started. */
export const tsxExecArgv = () => ["--import", import.meta.resolve("tsx")];

/** A 4 KiB source-like text file (the typical read_file) and a 64 MiB incompressible one. */
export function writeWorkspace(workdir: string): void {
  mkdirSync(workdir, { recursive: true });
  const line = "export const value = compute(firstArgument, secondArgument); // explain why\n";
  const text = line.repeat(Math.ceil(READ_FILE_BYTES / line.length)).slice(0, READ_FILE_BYTES - 1) + "\n";
  writeFileSync(join(workdir, READ_FILE), text);
  // Incompressible, though nothing on the path compresses.
  const block = randomBytes(1024 * 1024);
  const descriptor = openSync(join(workdir, STREAM_FILE), "w");
  try {
    for (let written = 0; written < STREAM_FILE_BYTES; written += block.length) writeFileSync(descriptor, block);
  } finally {
    closeSync(descriptor);
  }
}

/** The baselines' server (bench/spine/loopback-peer.ts) in a child process, so every comparison crosses a process boundary. */
export async function startLoopbackPeer(resources: Resources, filePath: string): Promise<LoopbackPorts> {
  const child = resources.child("loopback peer", fork(loopbackPeer, [filePath], { execArgv: tsxExecArgv(), stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  return new Promise<LoopbackPorts>((resolvePorts, reject) => {
    child.once("message", (message) => resolvePorts(message as LoopbackPorts));
    child.once("exit", (code, signal) => reject(new Error(`loopback peer exited early (code ${code}, signal ${signal})`)));
  });
}

export function rawHttpGet(port: number): () => Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return () =>
    new Promise<void>((done, fail) => {
      const request = http.get({ host: "127.0.0.1", port, path: "/", agent }, (response) => {
        if (response.statusCode !== 200) fail(new Error(`raw HTTP status ${response.statusCode}`));
        response.resume();
        response.once("end", done);
      });
      request.once("error", fail);
    });
}

export function readRawTcp(port: number, expectedBytes: number): Promise<void> {
  return new Promise<void>((done, fail) => {
    let bytes = 0;
    const socket = net.connect(port, "127.0.0.1");
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    socket.once("error", fail);
    socket.once("end", () => (bytes === expectedBytes ? done() : fail(new Error(`raw TCP read ${bytes} of ${expectedBytes} bytes`))));
  });
}

export async function expectOk(response: Response, what: string): Promise<void> {
  if (response.ok) return;
  throw new Error(`${what}: HTTP ${response.status} ${await response.text()}`);
}

/** The read_file tool call. */
export async function readFile(connection: AgentConnection): Promise<void> {
  const response = await connection.fetch(`/v1/files/read?path=${READ_FILE}`);
  await expectOk(response, "read_file");
  await response.arrayBuffer();
}

/** The execute tool call, with the cheapest command. */
export async function executeTrue(connection: AgentConnection): Promise<void> {
  const response = await connection.fetch("/v1/processes", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ command: "true" }),
  });
  await expectOk(response, "execute");
  const result = (await response.json()) as { exit_code: number | null };
  if (result.exit_code !== 0) throw new Error(`execute true: exit code ${result.exit_code}`);
}

/** The 64 MiB file, streamed. */
export async function readStream(connection: AgentConnection): Promise<void> {
  const response = await connection.fetch(`/v1/files/raw?path=${STREAM_FILE}`);
  await expectOk(response, "raw read");
  if (!response.body) throw new Error("raw read: no body");
  const reader = response.body.getReader();
  let bytes = 0;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) bytes += chunk.value.byteLength;
  if (bytes !== STREAM_FILE_BYTES) throw new Error(`raw read: ${bytes} of ${STREAM_FILE_BYTES} bytes`);
}

/** Checks once, outside the timed loops, that the daemon answers what we think it answers. */
export async function checkReadFile(connection: AgentConnection, path?: string): Promise<void> {
  const what = path ? `read_file over ${path}` : "read_file";
  const response = await connection.fetch(`/v1/files/read?path=${READ_FILE}`);
  await expectOk(response, what);
  const body = (await response.json()) as { file_size: number; truncated: boolean };
  if (body.file_size !== READ_FILE_BYTES || body.truncated) throw new Error(`${what} returned ${JSON.stringify(body).slice(0, 200)}`);
}

export function describeError(error: Error): string {
  const cause = error.cause instanceof Error ? ` (cause: ${(error.cause as NodeJS.ErrnoException).code ?? error.cause.message})` : "";
  return `${error.name}: ${error.message}${cause}`;
}

export const milliseconds = (value: number) => (value < 10 ? value.toFixed(3) : value.toFixed(1));
