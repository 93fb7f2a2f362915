import { describe, expect, it } from "vitest";
import { parseServerConfig } from "./config.ts";

describe("server configuration", () => {
  it("reads the tailnet settings from flags and KILN_* variables", () => {
    expect(parseServerConfig({}, {})).toMatchObject({ tailnet: false, tailnetRelayFallback: true, tailnetListen: "127.0.0.1:0" });
    expect(parseServerConfig({ tailnet: true }, {}).tailnet).toBe(true);
    for (const yes of ["1", "true", "yes", "on"]) expect(parseServerConfig({}, { KILN_TAILNET: yes }).tailnet).toBe(true);
    for (const no of ["0", "false", "no", "off"]) expect(parseServerConfig({}, { KILN_TAILNET: no }).tailnet).toBe(false);
    expect(parseServerConfig({}, {
      KILN_TAILNET: "1", KILN_TAILNET_URL: "https://headscale.example.com", KILN_TAILNET_API_KEY: "key", KILN_TAILNET_RELAY_FALLBACK: "false",
      KILN_TAILNET_LISTEN: "0.0.0.0:8080", KILN_TAILNET_STUN_LISTEN: "0.0.0.0:3478", KILN_TAILNET_DERP_IPV4: "203.0.113.7",
    })).toMatchObject({
      tailnet: true, tailnetUrl: "https://headscale.example.com", tailnetApiKey: "key", tailnetRelayFallback: false,
      tailnetListen: "0.0.0.0:8080", tailnetStunListen: "0.0.0.0:3478", tailnetDerpIpv4: "203.0.113.7",
    });
  });

  it("names every bad setting with its flag and variable", () => {
    const attempt = () => parseServerConfig({}, { KILN_TAILNET: "maybe", KILN_TAILNET_LISTEN: "nowhere", KILN_TAILNET_DERP_IPV4: "not-an-ip", KILN_TAILNET_URL: "headscale" });
    expect(attempt).toThrow(/--tailnet \/ KILN_TAILNET: must be true or false/);
    expect(attempt).toThrow(/--tailnet-listen \/ KILN_TAILNET_LISTEN: must be host:port/);
    expect(attempt).toThrow(/--tailnet-derp-ipv4 \/ KILN_TAILNET_DERP_IPV4: /);
    expect(attempt).toThrow(/--tailnet-url \/ KILN_TAILNET_URL: /);
  });
});
