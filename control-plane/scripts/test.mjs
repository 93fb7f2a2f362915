// `npm test`: install dependencies, check prerequisites, type-check, and run the whole suite.
// KILN_STRICT=1 (set by .ci/run) installs missing prerequisites or fails; it never skips.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePrerequisites } from "./prerequisites.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const strict = process.env.KILN_STRICT === "1";
const step = (message) => process.stderr.write(`\n▶ ${message}\n`);
const npx = process.platform === "win32" ? "npx.cmd" : "npx";

function mustRun(command, args, env = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env: { ...process.env, ...env } });
  if (result.status !== 0) {
    process.stderr.write(`\n✖ ${command} ${args.join(" ")} failed (exit ${result.status ?? result.signal})\n`);
    process.exit(result.status ?? 1);
  }
}

step("installing dependencies (pnpm)");
mustRun(npx, ["-y", "pnpm@10", "install", "--frozen-lockfile", "--reporter=append-only"], { COREPACK_INTEGRITY_KEYS: "0" });

step(`checking prerequisites${strict ? " (strict)" : ""}`);
const problems = ensurePrerequisites({ strict });
if (problems.length > 0) {
  for (const problem of problems) process.stderr.write(`✖ ${problem}\n`);
  process.exit(1);
}

step("type-checking");
mustRun(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmit"]);
step("type-checking the dashboard (control-plane/web)");
mustRun(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "control-plane/web/tsconfig.json", "--noEmit"]);

step("running tests (vitest)");
const report = path.join(os.tmpdir(), `kiln-vitest-${process.pid}.json`);
const extra = process.argv.slice(2);
const result = spawnSync(process.execPath, [path.join(root, "node_modules/vitest/vitest.mjs"), "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...extra], {
  cwd: root, stdio: "inherit", env: { ...process.env, KILN_STRICT: strict ? "1" : "0" },
});
if (existsSync(report)) {
  const summary = JSON.parse(readFileSync(report, "utf8"));
  rmSync(report, { force: true });
  const skipped = summary.numPendingTests + summary.numTodoTests;
  if (strict && skipped > 0) {
    process.stderr.write(`✖ strict mode: ${skipped} tests were skipped\n`);
    process.exitCode = 1;
  }
  process.stdout.write(`\ntests: ${summary.numPassedTests} passed, ${summary.numFailedTests} failed, ${skipped} skipped\n`);
}
if (result.status !== 0) process.exitCode = result.status ?? 1;
