#!/usr/bin/env node
// `kiln ssh --stdio` runs once per SSH connection (OpenSSH's ProxyCommand), so it skips the
// TypeScript loader and starts in a fraction of the time; see ssh-stdio.mjs.
if (process.argv[2] === "ssh" && process.argv.includes("--stdio")) {
  const { runSshStdio } = await import("./ssh-stdio.mjs");
  process.exitCode = await runSshStdio(process.argv.slice(3));
  // stdin (ssh's pipe) may still hold the event loop open.
  process.exit();
}

// Everything else runs the TypeScript sources directly through tsx's loader.
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
