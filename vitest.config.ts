import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["control-plane/src/**/*.test.ts", "workspace-daemon/src/**/*.test.ts", "tailnet/src/**/*.test.ts", "provisioner/src/**/*.test.ts", "control-plane/web/src/**/*.test.ts", "control-plane/web/e2e/**/*.test.ts"],
    globalSetup: ["./control-plane/src/testing/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
