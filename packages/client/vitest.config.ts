import { defineConfig } from "vitest/config";
import { sourceConditions } from "../../vitest.shared.ts";

export default defineConfig({
  ...sourceConditions,
  test: {
    include: ["src/**/*.test.ts"],
    // The server's template databases (server/src/testing/templates.ts), which its test servers copy.
    globalSetup: ["../server/src/testing/global-setup.ts"],
    // In-process servers on PGlite (and Postgres): a PGlite server has been
    // seen to take over a minute to start on a loaded two-core machine.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    maxWorkers: 2,
  },
});
