import { describe, expect, it } from "vitest";
import { postgresBackend } from "./backends.ts";

// In CI the Postgres suite must run: this fails when TEST_DATABASE_URL is
// missing or its server does not answer, instead of letting every Postgres
// case skip.
describe.runIf(process.env.CI)("Postgres suite in CI", () => {
  it("has a reachable TEST_DATABASE_URL", async () => {
    expect(postgresBackend, "TEST_DATABASE_URL must be set under CI").toBeDefined();
    const database = await postgresBackend?.open();
    expect(await database?.ping()).toBe(true);
    await database?.close();
  });
});
