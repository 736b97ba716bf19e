import { describe, expect, it } from "vitest";
import { takeRows } from "./raw-sql.ts";

describe("takeRows", () => {
  it("maps postgres-js's rows and empties its array", () => {
    const result = [{ n: 1 }, { n: 2 }];
    expect(takeRows(result, (r: { n: number }) => r.n * 10)).toEqual([10, 20]);
    expect(result).toHaveLength(0);
  });

  it("maps PGlite's rows and empties its array", () => {
    const result = { rows: [{ n: 3 }] };
    expect(takeRows(result, (r: { n: number }) => `#${r.n}`)).toEqual(["#3"]);
    expect(result.rows).toHaveLength(0);
  });
});
