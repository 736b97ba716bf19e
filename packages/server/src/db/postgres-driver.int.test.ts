import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { runUnless } from "../testing/skip.ts";

const url = process.env.TEST_DATABASE_URL;

/** What the driver's query keeps; not in its types. */
type QueryValues = { args: unknown[]; parameters: unknown[] };

describe(
  "the postgres driver as Coffer patches it (patches/postgres+3.4.9.patch)",
  runUnless(url === undefined ? "TEST_DATABASE_URL is not set" : undefined),
  () => {
    it("lets go of a query's values once it has resolved, and still prepares it once", async () => {
      const sql = postgres(url as string, { max: 1, onnotice: () => {} });
      try {
        const big = "x".repeat(10_000);
        const first = sql.unsafe("select length($1::text) as n", [big], { prepare: true });
        expect((first as unknown as QueryValues).args).toEqual([big]);
        expect(await first).toEqual([{ n: 10_000 }]);
        expect((first as unknown as QueryValues).args).toEqual([]);
        expect((first as unknown as QueryValues).parameters).toEqual([]);
        // The next run of the same text uses the statement prepared by the first.
        const again = sql.unsafe("select length($1::text) as n", ["abc"], { prepare: true });
        expect(await again).toEqual([{ n: 3 }]);
        const [{ count }] =
          (await sql`select count(*)::int as count from pg_prepared_statements where statement like 'select length($1::text)%'`) as unknown as [
            { count: number },
          ];
        expect(count).toBe(1);
      } finally {
        await sql.end();
      }
    });

    it("keeps a failed query's values, which a retry of its statement reads", async () => {
      const sql = postgres(url as string, { max: 1, onnotice: () => {} });
      try {
        const failed = sql.unsafe("select 1 / $1::int", [0], { prepare: true });
        await expect(failed).rejects.toThrow(/division by zero/);
        expect((failed as unknown as QueryValues).args).toEqual([0]);
      } finally {
        await sql.end();
      }
    });
  },
);
