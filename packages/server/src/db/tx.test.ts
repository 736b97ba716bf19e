import { describe, expect, it } from "vitest";
import { retryingConflicts } from "./tx.ts";

const pgError = (code: string) => Object.assign(new Error(`sqlstate ${code}`), { code });

describe("retryingConflicts", () => {
  it("runs the work again after a deadlock or a serialization failure", async () => {
    const failures = [pgError("40P01"), pgError("40001")];
    let runs = 0;
    const result = await retryingConflicts(async () => {
      runs++;
      const next = failures.shift();
      if (next) throw next;
      return "done";
    });
    expect(result).toBe("done");
    expect(runs).toBe(3);
  });

  it("gives up after three attempts, with the last error", async () => {
    let runs = 0;
    const last = pgError("40001");
    await expect(
      retryingConflicts(async () => {
        runs++;
        throw runs === 3 ? last : pgError("40P01");
      }),
    ).rejects.toBe(last);
    expect(runs).toBe(3);
  });

  it("does not retry other errors, wrapped or not", async () => {
    for (const err of [
      pgError("23505"),
      new Error("boom"),
      new Error("q", { cause: pgError("42P01") }),
    ]) {
      let runs = 0;
      await expect(
        retryingConflicts(async () => {
          runs++;
          throw err;
        }),
      ).rejects.toBe(err);
      expect(runs).toBe(1);
    }
  });
});
