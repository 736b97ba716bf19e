import { defineConfig } from "vitest/config";
import { sourceConditions } from "../../vitest.shared.ts";

export default defineConfig({
  ...sourceConditions,
  test: {
    include: ["src/**/*.test.ts"],
    // Some tests write and fsync many files or run child processes: leave
    // room for a loaded two-core machine.
    testTimeout: 30_000,
  },
});
