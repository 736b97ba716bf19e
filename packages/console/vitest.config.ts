import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";
import { sourceConditions } from "../../vitest.shared.ts";

/**
 * Component tests in a simulated browser (happy-dom). The workspace's
 * packages resolve from their sources, as in every package's tests, with
 * the "browser" condition first: the console's code runs in a browser.
 */
const conditions = ["browser", ...sourceConditions.resolve.conditions];

export default defineConfig({
  plugins: [react()],
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    setupFiles: ["src/test-setup.ts"],
    maxWorkers: 2,
  },
});
