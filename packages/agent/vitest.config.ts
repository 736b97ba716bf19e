import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    // Some tests write and fsync many files or run child processes: leave
    // room for a loaded two-core machine.
    testTimeout: 30_000,
  },
});
