import { describe, expect, it } from "vitest";
import { timeOrderedUuid } from "./ids.ts";

const RFC_9562_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("timeOrderedUuid", () => {
  it("is a UUID of version 7 and RFC 9562's variant, holding the time it was given", () => {
    const at = Date.UTC(2026, 11, 6, 16, 20, 0, 123);
    const id = timeOrderedUuid(at);
    expect(id).toMatch(RFC_9562_V7);
    expect(Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16)).toBe(at);
  });

  it("sorts by time, as text and as Postgres compares uuids (byte order)", () => {
    const times = [0, 1, 255, 256, 65_535, Date.now() - 1, Date.now(), 2 ** 48 - 1];
    const ids = times.map((t) => timeOrderedUuid(t));
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(RFC_9562_V7);
  });

  it("draws fresh random bits for every id, across refills of its entropy", () => {
    const at = Date.now();
    const ids = Array.from({ length: 5_000 }, () => timeOrderedUuid(at));
    expect(new Set(ids).size).toBe(ids.length);
    // The random part varies in every position it has (a stuck byte would show).
    const tails = new Set(ids.map((id) => id.slice(-12, -10)));
    expect(tails.size).toBeGreaterThan(200);
  });
});
