import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

/**
 * The console's unit and component tests run in happy-dom, importing the
 * workspace's packages from their TypeScript sources (as vite.config.ts does).
 */
export default defineConfig({
  plugins: [react()],
  resolve: { conditions: ["@coffer/source", "module", "browser", "development|production"] },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
    maxWorkers: 2,
  },
});
