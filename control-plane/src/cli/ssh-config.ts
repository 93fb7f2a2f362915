// The block `kiln config-ssh` manages in an OpenSSH client config.

export const BLOCK_START = "# ------------START-KILN-----------";
export const BLOCK_END = "# ------------END-KILN-------------";
/** Older or hand-shortened end markers are still recognised. */
const END_MARKER = /^# -+END-KILN-+\s*$/;
const START_MARKER = /^# -+START-KILN-+\s*$/;

export const HOST_PREFIX = "kiln.";
const SSH_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";

export interface ProxyCommandParts {
  /** The node binary that runs the CLI. */
  node: string;
  /** The CLI entry point (bin/kiln.mjs). */
  script: string;
  /** KILN_CONFIG_DIR to pass on, when the CLI runs with a non-default one. */
  configDir?: string;
}

/** sh quoting (OpenSSH runs ProxyCommand with `sh -c`), with `%` doubled because ssh_config expands `%` tokens in it. */
function quote(argument: string): string {
  const quoted = /^[A-Za-z0-9_\/.,:=@+-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, "%%");
}

export function proxyCommand(parts: ProxyCommandParts, workspace: string): string {
  const words = [parts.node, parts.script, "ssh", "--stdio", workspace].map(quote);
  return parts.configDir ? ["env", quote(`KILN_CONFIG_DIR=${parts.configDir}`), ...words].join(" ") : words.join(" ");
}

/** The managed block: one `Host kiln.<workspace>` per workspace, sorted so reruns produce the same text. */
export function renderBlock(options: { deployment: string; workspaces: string[]; proxy: ProxyCommandParts }): string {
  const lines = [
    BLOCK_START,
    `# Managed by 'kiln config-ssh' for ${options.deployment}; rerun it to update. Edits inside this block are lost.`,
  ];
  for (const workspace of [...new Set(options.workspaces)].sort()) {
    lines.push(
      `Host ${HOST_PREFIX}${workspace}`,
      `  ProxyCommand ${proxyCommand(options.proxy, workspace)}`,
      // The tunnel authenticates the workspace; its host key is not something a user can check.
      "  StrictHostKeyChecking no",
      "  UserKnownHostsFile /dev/null",
      "  LogLevel ERROR",
      "  ConnectTimeout 0",
      "  ServerAliveInterval 0",
      // AES-GCM first: the daemon's SSH server encrypts with Node's OpenSSL (AES-NI), where it moves
      // ~30 % more than OpenSSH's default ChaCha20-Poly1305 (docs/benchmarks.md, "scp"). The list holds
      // only ciphers that the daemon offers and every OpenSSL-built OpenSSH client has, FIPS builds included.
      `  Ciphers ${SSH_CIPHERS}`,
    );
  }
  lines.push(BLOCK_END);
  return `${lines.join("\n")}\n`;
}

export interface BlockLocation {
  /** Line index of the start marker, and of the line after the end marker. */
  start: number;
  end: number;
}

function locate(lines: string[]): BlockLocation | null {
  const start = lines.findIndex((line) => START_MARKER.test(line));
  if (start < 0) return null;
  const endOffset = lines.slice(start + 1).findIndex((line) => END_MARKER.test(line));
  if (endOffset < 0) throw new Error(`the Kiln block in the SSH config has a start marker but no end marker ('${BLOCK_END}'); fix the file by hand`);
  return { start, end: start + 1 + endOffset + 1 };
}

/** The hosts the current block (if any) defines. */
export function managedHosts(config: string): string[] {
  const lines = config.split("\n");
  const location = locate(lines);
  if (!location) return [];
  return lines.slice(location.start, location.end).flatMap((line) => {
    const match = /^\s*Host\s+(\S+)/.exec(line);
    return match ? [match[1]!] : [];
  });
}

/** `config` with the block replaced in place, or appended when there is none. Everything outside the block is kept byte for byte. */
export function applyBlock(config: string, block: string): string {
  const lines = config.split("\n");
  const location = locate(lines);
  const blockLines = block.replace(/\n$/, "").split("\n");
  if (location) {
    lines.splice(location.start, location.end - location.start, ...blockLines);
    return lines.join("\n");
  }
  if (config === "") return block;
  const separator = config.endsWith("\n\n") ? "" : config.endsWith("\n") ? "\n" : "\n\n";
  return `${config}${separator}${block}`;
}
