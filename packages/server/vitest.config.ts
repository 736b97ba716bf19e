import { defineConfig } from "vitest/config";
import { sourceConditions } from "../../vitest.shared.ts";

export default defineConfig({
  ...sourceConditions,
  test: {
    include: ["src/**/*.test.ts"],
    // Makes the run's template databases, which every test database copies.
    globalSetup: ["src/testing/global-setup.ts"],
    testTimeout: 30_000,
    // Starting an in-process server (PGlite initdb) can take a minute on a busy machine.
    hookTimeout: 180_000,
    // Two cores: run files one or two at a time so Postgres and PGlite do not starve.
    maxWorkers: 2,
  },
});
