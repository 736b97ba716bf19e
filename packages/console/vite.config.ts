import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The console is built to static files in dist/ (hashed names under
 * dist/assets/), which coffer-server serves from its HTTP port at `/`
 * (server/src/console/). `npm run dev` serves it with hot reload and sends
 * the API's paths to a running server (COFFER_DEV_API, default
 * http://127.0.0.1:8080).
 */
const api = process.env.COFFER_DEV_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  // The workspace's packages from their TypeScript sources, as in tests.
  resolve: { conditions: ["@coffer/source", "module", "browser", "development|production"] },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline script or style: the server's Content-Security-Policy allows none.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: {
      "/coffer.": { target: api, changeOrigin: false },
    },
  },
});
