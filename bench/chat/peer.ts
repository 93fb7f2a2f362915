/**
 * Everything outside the control plane in the chat benchmark, in a child process so the
 * bench process's RSS and CPU are the control plane's alone:
 * - a fake Anthropic Messages API: the test fake's real SSE wire format, with an artificial
 *   latency (fixed, or drawn per call from a range) spread over the frames on an absolute
 *   schedule (timer slop does not add up), timing every response it serves;
 * - the API client that creates chats over HTTP.
 *
 * The prompt of each chat carries its script (protocol.ts). Talks to its parent over IPC
 * (PeerCommand in, PeerReply out); exits when the parent goes.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { anthropicProtocol } from "../../control-plane/src/llm/testing/fake-anthropic.ts";
import type { FakeRespondTurn } from "../../control-plane/src/llm/testing/fake-server.ts";
import { epochMs, promptFor, scriptIn, type ChatScript, type CreatedChat, type ModelCall, type PeerCommand, type PeerReply } from "./protocol.ts";

const TEXT = ["Hello ", "from the ", "fake model."];

/** Model calls served, per chat key, in call order. */
const calls = new Map<string, ModelCall[]>();

/** Held model calls wait for this; `release` resolves it for good. */
let release: () => void = () => {};
const released = new Promise<void>((resolve) => (release = resolve));
let held = 0;

function scriptOf(body: { messages?: unknown[] } | undefined): ChatScript | null {
  return scriptIn(JSON.stringify(body?.messages?.[0] ?? ""));
}

/** Which model call of the turn this is, from 0: the assistant messages (one per earlier step) in the request. */
function stepOf(body: { messages?: { role: string }[] }): number {
  return (body.messages ?? []).filter((message) => message.role === "assistant").length;
}

function turnFor(script: ChatScript, step: number): FakeRespondTurn {
  if (step < script.toolCalls) return { type: "respond", text: ["Let me ", "look."], toolCalls: [{ name: "list_templates", input: {} }] };
  return { type: "respond", text: TEXT };
}

/** FNV-1a: a 32-bit seed from a string. */
function hash(text: string): number {
  let value = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) value = Math.imul(value ^ text.charCodeAt(index), 0x01000193);
  return value >>> 0;
}

/** The latency of one model call: fixed, or uniform over the script's range, the same for a chat key and step on every run. */
function latencyOf(script: ChatScript, step: number): number {
  if (script.latencyMaxMs === undefined) return script.latencyMs;
  // One round of a 32-bit mixer (murmur3's finalizer) over the seed spreads neighbouring keys evenly.
  let value = hash(`${script.key}#${step}`);
  value = Math.imul(value ^ (value >>> 16), 0x85ebca6b);
  value = Math.imul(value ^ (value >>> 13), 0xc2b2ae35);
  value = (value ^ (value >>> 16)) >>> 0;
  return script.latencyMs + (value / 2 ** 32) * (script.latencyMaxMs - script.latencyMs);
}

async function serveModelCall(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  let started = performance.now();
  const startMs = epochMs();
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { model?: string; messages?: { role: string }[] };
  const script = scriptOf(body);
  if (request.method !== "POST" || request.url?.split("?")[0] !== "/v1/messages" || !script) {
    const { headers, body: errorBody } = anthropicProtocol.error(400, "bench fake: not a scripted /v1/messages call");
    response.writeHead(400, headers).end(errorBody);
    return;
  }
  const step = stepOf(body);
  const { headers, frames } = anthropicProtocol.stream(turnFor(script, step), { method: "POST", path: request.url, body, headers: {}, closedEarly: false });
  response.writeHead(200, headers);
  if (script.hold && step === 0) {
    // The stream is open and has started (message_start), as while a real model thinks.
    const first = frames.shift();
    if (first !== undefined) response.write(first);
    held++;
    await released;
    held--;
    started = performance.now();
  }
  const gap = frames.length > 1 ? latencyOf(script, step) / (frames.length - 1) : 0;
  for (const [index, frame] of frames.entries()) {
    const due = started + index * gap;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (response.destroyed) return;
    response.write(frame);
  }
  await new Promise<void>((resolve) => response.end(resolve));
  let list = calls.get(script.key);
  if (!list) calls.set(script.key, (list = []));
  list.push({ startMs, endMs: epochMs() });
}

async function createChats(command: Extract<PeerCommand, { type: "create" }>): Promise<PeerReply> {
  const started = performance.now();
  const created: CreatedChat[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < command.chats.length) {
      const index = next++;
      const script = command.chats[index] as ChatScript;
      if (command.ratePerSecond) {
        const wait = started + (index * 1000) / command.ratePerSecond - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const posted = performance.now();
      try {
        const response = await fetch(`${command.url}/api/v1/chats`, {
          method: "POST",
          headers: { authorization: `Bearer ${command.token}`, "content-type": "application/json" },
          body: JSON.stringify({ prompt: promptFor(script) }),
        });
        const text = await response.text();
        if (response.status !== 201) throw new Error(`HTTP ${response.status} ${text.slice(0, 200)}`);
        created.push({ key: script.key, id: (JSON.parse(text) as { id: string }).id, postMs: performance.now() - posted });
      } catch (error) {
        failures.push(`${script.key}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, command.inFlight) }, worker));
  return { type: "created", chats: created, failures, wallMs: performance.now() - started };
}

if (!process.send) {
  process.stderr.write("bench/chat/peer.ts runs as a child of bench/chat.ts (it needs an IPC channel)\n");
  process.exit(2);
}
const send = (reply: PeerReply) => process.send?.(reply);
const cpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

const server = http.createServer((request, response) => {
  serveModelCall(request, response).catch((error: unknown) => {
    if (!response.headersSent) response.writeHead(500).end(String(error));
    else response.destroy();
  });
});
server.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

process.on("message", (command: PeerCommand) => {
  if (command.type === "create") {
    void createChats(command).then(send);
  } else if (command.type === "collect") {
    send({ type: "collected", calls: Object.fromEntries(calls), cpuMs: cpuMs() });
    calls.clear();
  } else if (command.type === "cpu") {
    send({ type: "cpu", cpuMs: cpuMs() });
  } else if (command.type === "held") {
    send({ type: "held", count: held });
  } else if (command.type === "release") {
    release();
    send({ type: "released" });
  }
});
process.on("disconnect", () => process.exit(0));
send({ type: "ready", baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
