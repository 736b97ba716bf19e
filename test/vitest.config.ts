import { defineConfig } from "vitest/config";
import { sourceConditions } from "../vitest.shared.ts";

export default defineConfig({
  ...sourceConditions,
  test: {
    include: [
      "e2e/**/*.test.ts",
      "interop/**/*.test.ts",
      "faults/**/*.test.ts",
      "fuzz/**/*.test.ts",
      "console/**/*.test.ts",
      "compat/**/*.test.ts",
    ],
    // Real processes: a fresh embedded database takes several seconds to
    // initialise, more when two files start servers at once on two cores.
    testTimeout: 90_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    maxWorkers: 2,
  },
});
