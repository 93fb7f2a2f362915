import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const daemonRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../workspace-daemon");
const daemonVersion = (JSON.parse(readFileSync(path.join(daemonRoot, "package.json"), "utf8")) as { version: string }).version;

/** kiln-daemon as one file a workspace can run with any Node ≥ 20, versioned by its content. */
export interface DaemonBundle {
  /** `<package version>+<first 12 hex of the sha256>`: what `?version=` asks for. */
  version: string;
  sha256: string;
  content: Buffer;
}

/**
 * node-pty loads its compiled addon from a per-platform package by a computed name, which a bundler cannot
 * follow. The addons of the platforms installed here are embedded instead and written next to a cache
 * directory on first use; on other platforms PTY support reports itself unavailable, the rest works.
 */
function embedNodePty(): Plugin {
  return {
    name: "kiln-embed-node-pty",
    setup(builder) {
      builder.onLoad({ filter: /[\\/]@lydell[\\/]node-pty[\\/]requireBinary\.js$/ }, (args) => {
        const embedded: Record<string, string> = {};
        for (const platform of ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"]) {
          try {
            const packageDirectory = path.dirname(createRequire(args.path).resolve(`@lydell/node-pty-${platform}/package.json`));
            embedded[platform] = readFileSync(path.join(packageDirectory, "pty.node")).toString("base64");
          } catch {
            // not installed on this machine: that platform gets no PTY from this bundle
          }
        }
        const contents = `
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const crypto = require("node:crypto");
const embedded = ${JSON.stringify(embedded)};
exports.requireBinary = function requireBinary(file) {
  const platform = process.platform + "-" + process.arch;
  const data = embedded[platform];
  if (!data || file !== "pty.node") throw new Error("PTY support is not available in this kiln-daemon build for " + platform);
  const bytes = Buffer.from(data, "base64");
  const digest = crypto.createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir() || os.tmpdir(), ".cache");
  const directory = path.join(base, "kiln", "native", digest);
  const target = path.join(directory, "pty.node");
  if (!fs.existsSync(target)) {
    fs.mkdirSync(directory, { recursive: true });
    const staging = target + "." + process.pid;
    fs.writeFileSync(staging, bytes, { mode: 0o755 });
    fs.renameSync(staging, target);
  }
  return require(target);
};
`;
        return { contents, loader: "js" };
      });
      // Optional native accelerators (ssh2's crypto binding, ws's bufferutil) are loaded in try/catch; leave them out.
      builder.onResolve({ filter: /\.node$|^cpu-features$|^bufferutil$|^utf-8-validate$/ }, (args) => ({ path: args.path, external: true }));
    },
  };
}


/** Builds the bundle once per process; later calls share the result. */
export function createDaemonBundler(): { get(): Promise<DaemonBundle> } {
  let pending: Promise<DaemonBundle> | null = null;
  return {
    get() {
      pending ??= bundle().catch((error) => {
        pending = null;
        throw error;
      });
      return pending;
    },
  };
}

async function bundle(): Promise<DaemonBundle> {
  const result = await build({
    entryPoints: [path.join(daemonRoot, "src", "main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    minify: true,
    legalComments: "none",
    logLevel: "silent",
    plugins: [embedNodePty()],
    // CommonJS dependencies call require(); give the ES module one.
    banner: {
      js: [
        "#!/usr/bin/env node",
        'import { createRequire as __kilnCreateRequire } from "node:module";',
        'import { dirname as __kilnDirname } from "node:path";',
        'import { fileURLToPath as __kilnFileUrlToPath } from "node:url";',
        "const require = __kilnCreateRequire(import.meta.url);",
        "const __filename = __kilnFileUrlToPath(import.meta.url);",
        "const __dirname = __kilnDirname(__filename);",
      ].join("\n"),
    },
  });
  const content = Buffer.from(result.outputFiles[0]!.contents);
  const sha256 = createHash("sha256").update(content).digest("hex");
  return { version: `${daemonVersion}+${sha256.slice(0, 12)}`, sha256, content };
}
