// `npm start`: install dependencies and run `kiln server` on embedded defaults (PGlite, local provisioner, relay tunnel).
// Extra arguments go to `kiln server`, e.g. `npm start -- --listen 0.0.0.0:3000`.
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const npx = process.platform === "win32" ? "npx.cmd" : "npx";
process.stderr.write("▶ installing dependencies (pnpm)\n");
const install = spawnSync(npx, ["-y", "pnpm@10", "install", "--frozen-lockfile", "--reporter=append-only"], { cwd: root, stdio: "inherit", env: { ...process.env, COREPACK_INTEGRITY_KEYS: "0" } });
if (install.status !== 0) process.exit(install.status ?? 1);

process.stderr.write("▶ building the dashboard (vite)\n");
const web = path.join(root, "control-plane/web");
const build = spawnSync(process.execPath, [path.join(web, "node_modules/vite/bin/vite.js"), "build", "--logLevel", "warn"], { cwd: web, stdio: "inherit" });
if (build.status !== 0) process.exit(build.status ?? 1);

process.stderr.write("▶ starting kiln server\n");
const server = spawn(process.execPath, [path.join(root, "control-plane/bin/kiln.mjs"), "server", ...process.argv.slice(2)], { cwd: root, stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.kill(signal));
server.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
