import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `pnpm --filter @kiln/web dev` proxies the API to a `kiln server` on KILN_URL (default http://127.0.0.1:3000).
const server = process.env.KILN_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: { "/api": { target: server, changeOrigin: false, ws: true }, "/healthz": server } },
});
