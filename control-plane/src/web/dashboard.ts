import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { brotliCompress, constants as zlib, gzip } from "node:zlib";
import { Hono, type Context } from "hono";

/** Where `pnpm --filter @kiln/web build` (run by `npm start`) puts the dashboard. */
export const dashboardDist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../web/dist");

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
  ".webmanifest": "application/manifest+json",
};
const compressible = new Set([".html", ".js", ".css", ".json", ".svg", ".txt", ".map", ".webmanifest"]);

interface Encoded {
  raw: Buffer;
  br?: Buffer;
  gzip?: Buffer;
  mtimeMs: number;
  etag: string;
}

/**
 * Scripts only from this server; the API, its streams and the terminal's WebSocket on this origin
 * only. Inline styles stay allowed because xterm.js writes a <style> element for its theme.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:", "font-src 'self' data:",
  "connect-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'",
].join("; ");

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Kiln</title>
<body style="font-family:system-ui;max-width:40rem;margin:4rem auto;padding:0 1rem">
<h1>Kiln</h1><p>The dashboard has not been built. Run <code>npm start</code> (which builds it) or
<code>npx -y pnpm@10 --filter @kiln/web build</code>, then reload. The API is at <code>/api/v1</code>.</p></body>`;

/**
 * Serves the built dashboard: files under `directory`, and index.html for any other path that is not
 * the API (the router runs in the browser). Hashed assets are cached for a year, index.html is
 * revalidated; compressible files are sent brotli- or gzip-encoded (compressed once, kept in memory).
 */
export function dashboardRoutes(options: { directory?: string } = {}) {
  const directory = options.directory ?? dashboardDist;
  const cache = new Map<string, Encoded>();
  const app = new Hono();

  async function load(file: string): Promise<Encoded | null> {
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) return null;
    const cached = cache.get(file);
    if (cached && cached.mtimeMs === info.mtimeMs) return cached;
    const raw = await readFile(file);
    const entry: Encoded = { raw, mtimeMs: info.mtimeMs, etag: `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"` };
    if (compressible.has(path.extname(file)) && raw.length > 512) {
      entry.br = await brotli(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9 } });
      entry.gzip = await gzipAsync(raw, { level: 9 });
    }
    cache.set(file, entry);
    return entry;
  }

  function send(c: Context, file: string, entry: Encoded, cacheControl: string): Response {
    const headers = new Headers({
      "content-type": contentTypes[path.extname(file)] ?? "application/octet-stream",
      "cache-control": cacheControl,
      etag: entry.etag,
      vary: "accept-encoding",
      "x-content-type-options": "nosniff",
    });
    if (path.extname(file) === ".html") {
      headers.set("content-security-policy", CONTENT_SECURITY_POLICY);
      headers.set("x-frame-options", "DENY");
      headers.set("referrer-policy", "same-origin");
    }
    if (c.req.header("if-none-match") === entry.etag) return new Response(null, { status: 304, headers });
    const accepted = c.req.header("accept-encoding") ?? "";
    let body = entry.raw;
    if (entry.br && /\bbr\b/.test(accepted)) {
      body = entry.br;
      headers.set("content-encoding", "br");
    } else if (entry.gzip && /\bgzip\b/.test(accepted)) {
      body = entry.gzip;
      headers.set("content-encoding", "gzip");
    }
    headers.set("content-length", String(body.length));
    return new Response(c.req.method === "HEAD" ? null : new Uint8Array(body), { status: 200, headers });
  }

  app.on(["GET", "HEAD"], "*", async (c, next) => {
    const pathname = decodeURIComponent(new URL(c.req.url).pathname);
    if (pathname.startsWith("/api/") || pathname === "/healthz") return next();
    const relative = path.normalize(pathname).replace(/^([/\\])+/, "");
    const file = path.join(directory, relative);
    if (relative && !relative.startsWith("..") && file.startsWith(directory + path.sep)) {
      const entry = await load(file);
      if (entry) {
        const hashed = relative.startsWith(`assets${path.sep}`);
        return send(c, file, entry, hashed ? "public, max-age=31536000, immutable" : "no-cache");
      }
      // A missing asset is a 404, not the app: a stale tab asking for an old chunk must not get HTML.
      if (relative.startsWith(`assets${path.sep}`) || path.extname(relative) !== "") return c.text("not found", 404);
    }
    const index = path.join(directory, "index.html");
    const entry = await load(index);
    if (!entry) return c.html(NOT_BUILT, 200, { "cache-control": "no-cache" });
    return send(c, index, entry, "no-cache");
  });

  return app;
}
