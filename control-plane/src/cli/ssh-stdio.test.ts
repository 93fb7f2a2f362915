import { describe, expect, it } from "vitest";
import { configDirectory, describeClose as describeCloseFast } from "../../bin/ssh-stdio.mjs";
import { CloseCode } from "../interactive/protocol.ts";
import { configDir } from "./config-store.ts";
import { describeClose } from "./workspace-socket.ts";

// bin/ssh-stdio.mjs is plain JavaScript so OpenSSH's ProxyCommand starts fast; it repeats two
// small pieces of the CLI, which must stay the same.
describe("the fast ProxyCommand path agrees with the CLI", () => {
  it("finds the same config directory", () => {
    for (const environment of [{ KILN_CONFIG_DIR: "/tmp/kiln-config" }, { XDG_CONFIG_HOME: "/tmp/xdg" }, {}]) {
      expect(configDirectory(environment)).toBe(configDir(environment));
    }
  });

  it("describes closes the same way", () => {
    for (const [code, reason] of [[CloseCode.normal, ""], [1005, ""], [CloseCode.agentLost, "connection to the workspace agent was lost"], [CloseCode.agentLost, ""], [1006, ""], [CloseCode.streamFailed, "the workspace ended the stream"]] as const) {
      expect(describeCloseFast("dev", code, reason)).toBe(describeClose("dev", code, reason));
    }
  });
});
