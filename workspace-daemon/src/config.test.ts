import { homedir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  test("reads the variables and applies defaults", () => {
    expect(loadConfig({ KILN_AGENT_TOKEN: "token", KILN_URL: "https://kiln.example.com" })).toEqual({
      agentToken: "token",
      controlPlaneUrl: "https://kiln.example.com",
      workdir: process.cwd(),
      stateDir: join(homedir(), ".kiln"),
      logLevel: "info",
      tailscaleBinDir: undefined,
      relayFraming: "direct",
    });
    expect(loadConfig({ KILN_AGENT_TOKEN: "t", KILN_URL: "http://10.0.0.1:3000", KILN_WORKDIR: "/tmp", KILN_LOG_LEVEL: "debug", KILN_TAILSCALE_BIN_DIR: "/opt/tailscale", KILN_RELAY_FRAMING: "websocket" })).toMatchObject({
      workdir: "/tmp",
      relayFraming: "websocket",
      logLevel: "debug",
      tailscaleBinDir: "/opt/tailscale",
    });
  });

  test("treats empty variables as unset", () => {
    expect(loadConfig({ KILN_AGENT_TOKEN: "t", KILN_URL: "https://k", KILN_LOG_LEVEL: "", KILN_WORKDIR: "" })).toMatchObject({
      logLevel: "info",
      workdir: process.cwd(),
    });
  });

  test("lists every bad variable in one error, without their values", () => {
    const attempt = () =>
      loadConfig({ KILN_AGENT_TOKEN: "", KILN_URL: "ftp://secret-host", KILN_WORKDIR: "/no/such/dir", KILN_RELAY_FRAMING: "carrier-pigeon", KILN_LOG_LEVEL: "loud" });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const { problems, message } = error as ConfigError;
      expect(problems.map((problem) => problem.variable)).toEqual(["KILN_AGENT_TOKEN", "KILN_URL", "KILN_WORKDIR", "KILN_RELAY_FRAMING", "KILN_LOG_LEVEL"]);
      expect(message).toContain("KILN_AGENT_TOKEN: required");
      expect(message).toContain("KILN_URL: must be an http(s) URL");
      expect(message).toContain("KILN_WORKDIR: must be an existing directory");
      expect(message).toContain('KILN_RELAY_FRAMING: Invalid option: expected one of "direct"|"websocket"');
      expect(message).not.toContain("secret-host");
    }
  });
});
