import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyBlock, BLOCK_END, BLOCK_START, managedHosts, proxyCommand, renderBlock } from "./ssh-config.ts";

const proxy = { node: "/usr/bin/node", script: "/opt/kiln/bin/kiln.mjs" };

describe("ssh config block", () => {
  it("renders one sorted Host entry per workspace with the ProxyCommand", () => {
    const block = renderBlock({ deployment: "https://kiln.example.com", workspaces: ["web", "api", "api"], proxy });
    expect(block.startsWith(`${BLOCK_START}\n`)).toBe(true);
    expect(block.endsWith(`${BLOCK_END}\n`)).toBe(true);
    expect(managedHosts(block)).toEqual(["kiln.api", "kiln.web"]);
    expect(block).toContain("Host kiln.api\n  ProxyCommand /usr/bin/node /opt/kiln/bin/kiln.mjs ssh --stdio api\n");
  });

  it("is a config OpenSSH's own client reads, with AES-GCM first", () => {
    const directory = mkdtempSync(path.join(os.tmpdir(), "kiln-ssh-config-"));
    try {
      const file = path.join(directory, "config");
      writeFileSync(file, renderBlock({ deployment: "d", workspaces: ["api"], proxy }));
      const resolved = execFileSync("ssh", ["-G", "-F", file, "kiln.api"], { encoding: "utf8" });
      expect(resolved).toMatch(/^ciphers aes128-gcm@openssh.com,/m);
      expect(resolved).toContain("proxycommand /usr/bin/node /opt/kiln/bin/kiln.mjs ssh --stdio api");
      expect(resolved).toMatch(/^stricthostkeychecking (false|no)$/m);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("quotes for sh and escapes ssh_config % tokens", () => {
    expect(proxyCommand({ node: "/usr/bin/node", script: "/home/a b/100%/kiln.mjs", configDir: "/tmp/it's" }, "dev"))
      .toBe(`env 'KILN_CONFIG_DIR=/tmp/it'\\''s' /usr/bin/node '/home/a b/100%%/kiln.mjs' ssh --stdio dev`);
  });

  it("appends to a file without a block, replaces the block in place, and is idempotent", () => {
    const user = "Host *\n  ServerAliveInterval 30\n";
    const first = applyBlock(user, renderBlock({ deployment: "d", workspaces: ["a", "b"], proxy }));
    expect(first.startsWith(`${user}\n${BLOCK_START}`)).toBe(true);
    const withTail = `${first}\nHost after\n  User me\n`;
    const second = applyBlock(withTail, renderBlock({ deployment: "d", workspaces: ["b"], proxy }));
    expect(managedHosts(second)).toEqual(["kiln.b"]);
    expect(second.startsWith(`${user}\n${BLOCK_START}`)).toBe(true);
    expect(second.endsWith(`${BLOCK_END}\n\nHost after\n  User me\n`)).toBe(true);
    expect(applyBlock(second, renderBlock({ deployment: "d", workspaces: ["b"], proxy }))).toBe(second);
    expect(applyBlock("", renderBlock({ deployment: "d", workspaces: [], proxy }))).toBe(`${BLOCK_START}\n# Managed by 'kiln config-ssh' for d; rerun it to update. Edits inside this block are lost.\n${BLOCK_END}\n`);
  });

  it("refuses a block whose end marker is missing", () => {
    expect(() => applyBlock(`${BLOCK_START}\nHost kiln.x\n`, renderBlock({ deployment: "d", workspaces: [], proxy }))).toThrow(/no end marker/);
  });
});
