// Vite build for the CoreC dashboard. `npm run build` writes dist/index.html and
// dist/assets/*; the CoreC API serves them at `/` and `/assets/*`.
// `npm run dev` serves the page with hot reload and proxies the API and the WebSocket
// to a node started with `corec run` (127.0.0.1:8000, or COREC_API_URL).
import { defineConfig } from "vite";

const api = process.env.COREC_API_URL || "http://127.0.0.1:8000";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: {
      "/api": api,
      "/health": api,
      "/ws": { target: api.replace(/^http/, "ws"), ws: true },
    },
  },
});
