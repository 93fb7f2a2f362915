import { AGENT_PLATFORMS } from "@kiln/provisioner/terraform";

export interface InitScriptOptions {
  daemon: { version: string; sha256: string };
  /** The server's Node.js version, offered for download to workspaces that lack Node ≥ 20 on the same platform. */
  nodeVersion: string;
}

/**
 * Kiln's agent init script: what `coder_agent.<name>.init_script` holds. The Coder provider replaces
 * `${ACCESS_URL}` (with a trailing slash) and `${AUTH_TYPE}`; the token comes from CODER_AGENT_TOKEN, which
 * the template sets from `coder_agent.<name>.token`, exactly as for Coder's own agent. It downloads the
 * versioned kiln-daemon bundle (and, if the machine has no Node.js ≥ 20, the server's Node for the same
 * platform), checks its SHA-256, and runs it.
 */
export function unixInitScript(options: InitScriptOptions): string {
  const lines = [
    "#!/bin/sh",
    "# Kiln workspace agent bootstrap: downloads kiln-daemon from the control plane and runs it.",
    "set -eu",
    'KILN_ACCESS_URL="${ACCESS_URL}"',
    'KILN_AUTH_TYPE="${AUTH_TYPE}"',
    `KILN_DAEMON_VERSION="${options.daemon.version}"`,
    `KILN_DAEMON_SHA256="${options.daemon.sha256}"`,
    `KILN_NODE_VERSION="${options.nodeVersion}"`,
    'if [ "$KILN_AUTH_TYPE" != "token" ]; then',
    '  echo "kiln-init: coder_agent auth \\"$KILN_AUTH_TYPE\\" is not supported by Kiln; use auth = \\"token\\"" >&2',
    "  exit 1",
    "fi",
    'KILN_TOKEN="${CODER_AGENT_TOKEN:-${KILN_AGENT_TOKEN:-}}"',
    'if [ -z "$KILN_TOKEN" ]; then',
    '  echo "kiln-init: CODER_AGENT_TOKEN is not set; give the workspace coder_agent.<name>.token as CODER_AGENT_TOKEN" >&2',
    "  exit 1",
    "fi",
    'KILN_CACHE="${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/kiln}"',
    'mkdir -p "$KILN_CACHE"',
    "",
    "kiln_fetch() {",
    '  if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$2" "$1"',
    '  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"',
    '  elif [ -n "${KILN_NODE:-}" ]; then "$KILN_NODE" -e \'fetch(process.argv[1]).then(async (r) => { if (!r.ok) throw new Error("HTTP " + r.status); require("fs").writeFileSync(process.argv[2], Buffer.from(await r.arrayBuffer())); }).catch((e) => { console.error(e.message); process.exit(1); })\' "$1" "$2"',
    '  else echo "kiln-init: curl, wget or node is needed to download kiln-daemon" >&2; return 1',
    "  fi",
    "}",
    "",
    "# Retries: the control plane may be unreachable for a moment while the workspace's network comes up.",
    "kiln_download() {",
    "  attempt=0",
    '  while ! kiln_fetch "$1" "$2.partial"; do',
    "    attempt=$((attempt + 1))",
    '    if [ "$attempt" -ge 30 ]; then echo "kiln-init: could not download $1" >&2; return 1; fi',
    "    sleep 2",
    "  done",
    '  mv "$2.partial" "$2"',
    "}",
    "",
    "kiln_node_ok() {",
    '  "$1" -e \'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)\' >/dev/null 2>&1',
    "}",
    "",
    'KILN_NODE="$(command -v node || true)"',
    'if [ -z "$KILN_NODE" ] || ! kiln_node_ok "$KILN_NODE"; then',
    '  case "$(uname -m)" in x86_64|amd64) kiln_arch=x64 ;; aarch64|arm64) kiln_arch=arm64 ;; *) kiln_arch="$(uname -m)" ;; esac',
    '  kiln_os="$(uname -s | tr "[:upper:]" "[:lower:]")"',
    '  KILN_NODE="$KILN_CACHE/node-$KILN_NODE_VERSION-$kiln_os-$kiln_arch"',
    '  if [ ! -x "$KILN_NODE" ]; then',
    '    echo "kiln-init: no Node.js >= 20 found; downloading the control plane\'s ($KILN_NODE_VERSION)" >&2',
    '    kiln_download "${KILN_ACCESS_URL}api/v1/agent/download/node?platform=$kiln_os-$kiln_arch" "$KILN_NODE" || { echo "kiln-init: install Node.js >= 20 in the workspace image" >&2; exit 1; }',
    '    chmod +x "$KILN_NODE"',
    "  fi",
    "fi",
    "",
    'KILN_DAEMON="$KILN_CACHE/kiln-daemon-$KILN_DAEMON_VERSION.mjs"',
    'if [ ! -f "$KILN_DAEMON" ]; then',
    `  kiln_download "\${KILN_ACCESS_URL}api/v1/agent/download/kiln-daemon?version=${encodeURIComponent(options.daemon.version)}" "$KILN_DAEMON"`,
    "fi",
    "if command -v sha256sum >/dev/null 2>&1; then",
    '  if ! echo "$KILN_DAEMON_SHA256  $KILN_DAEMON" | sha256sum -c - >/dev/null 2>&1; then',
    '    rm -f "$KILN_DAEMON"',
    '    echo "kiln-init: kiln-daemon $KILN_DAEMON_VERSION failed its SHA-256 check" >&2',
    "    exit 1",
    "  fi",
    "fi",
    "",
    "# The token is the daemon's alone: processes in the workspace must not inherit it.",
    "unset CODER_AGENT_TOKEN",
    'export KILN_AGENT_TOKEN="$KILN_TOKEN"',
    'export KILN_URL="${KILN_ACCESS_URL%/}"',
    'export KILN_WORKDIR="${KILN_WORKDIR:-${HOME:-/}}"',
    'exec "$KILN_NODE" "$KILN_DAEMON"',
    "",
  ];
  return lines.join("\n");
}

/** The init script for every platform the provider knows; Windows agents get one that explains they are unsupported. */
export function initScripts(options: InitScriptOptions): Record<string, string> {
  const scripts: Record<string, string> = {};
  for (const platform of AGENT_PLATFORMS) {
    scripts[platform] = platform.startsWith("windows")
      ? "Write-Error 'Kiln does not support Windows workspace agents yet'; exit 1"
      : unixInitScript(options);
  }
  return scripts;
}
