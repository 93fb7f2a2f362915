import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import zlib from "node:zlib";

/** Keep-alive agents shared by every provider client: one connection pool per origin, as `fetch` has. */
const agents = { "http:": new http.Agent({ keepAlive: true }), "https:": new https.Agent({ keepAlive: true }) };

/** Statuses whose response has no body (a `Response` refuses one). */
const nullBodyStatuses = new Set([101, 103, 204, 205, 304]);

/**
 * A `fetch` for the provider SDKs' `fetch` option, over `node:http` with keep-alive agents. The
 * global `fetch` (undici) costs ~0.5 ms of CPU per model call more here: request objects, header
 * normalisation, and the body written in a second syscall after the headers. This covers what the
 * SDKs send — a string or byte body, no redirects (the provider APIs answer directly) — and hands
 * anything else to the global `fetch`.
 */
export function httpFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const body = init.body;
  const simpleBody = body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array;
  if (input instanceof Request || !simpleBody || (init.redirect !== undefined && init.redirect !== "follow")) return fetch(input, init);
  const url = typeof input === "string" ? new URL(input) : input;
  const agent = url.protocol === "https:" ? agents["https:"] : url.protocol === "http:" ? agents["http:"] : null;
  if (!agent) return fetch(input, init);
  const signal = init.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(abortError(signal));

  return new Promise<Response>((resolve, reject) => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    if (body !== undefined && body !== null) headers["content-length"] = String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength);
    const request = (url.protocol === "https:" ? https : http).request(url, { method: init.method ?? "GET", headers, agent });
    const onAbort = () => request.destroy(abortError(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    const release = () => signal?.removeEventListener("abort", onAbort);
    request.once("error", (error) => {
      release();
      reject(new TypeError("fetch failed", { cause: error }));
    });
    request.once("response", (response) => {
      response.once("close", release);
      const responseHeaders = new Headers();
      const raw = response.rawHeaders;
      for (let index = 0; index < raw.length; index += 2) responseHeaders.append(raw[index]!, raw[index + 1]!);
      const status = response.statusCode ?? 0;
      if (nullBodyStatuses.has(status) || init.method === "HEAD") {
        response.resume();
        resolve(new Response(null, { status, statusText: response.statusMessage, headers: responseHeaders }));
        return;
      }
      const decoded = decode(response, responseHeaders.get("content-encoding"));
      resolve(new Response(Readable.toWeb(decoded) as ReadableStream<Uint8Array>, { status, statusText: response.statusMessage, headers: responseHeaders }));
    });
    request.end(body ?? undefined);
  });
}

/** Undoes a content encoding, as `fetch` does (the SDKs do not ask for one, but a server may send it). */
function decode(response: http.IncomingMessage, encoding: string | null): Readable {
  const decoder = encoding === "gzip" || encoding === "x-gzip" ? zlib.createGunzip()
    : encoding === "deflate" ? zlib.createInflate()
    : encoding === "br" ? zlib.createBrotliDecompress()
    : null;
  if (!decoder) return response;
  response.once("error", (error) => decoder.destroy(error));
  return response.pipe(decoder);
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("This operation was aborted", "AbortError");
}
