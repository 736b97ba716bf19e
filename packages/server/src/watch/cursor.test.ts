import { describe, expect, it } from "vitest";
import { epochTag, formatCursor, parseCursor } from "./cursor.ts";

const EPOCH = "0123abcd-4567-89ef-0123-456789abcdef";

describe("watch cursors", () => {
  it("round-trips a position, including transaction ids beyond 2^53", () => {
    const position = { tx: 2n ** 60n + 7n, seq: 42 };
    const cursor = formatCursor(EPOCH, position);
    expect(cursor).toBe("0123abcd4567.1152921504606846983.42");
    expect(parseCursor(cursor)).toEqual({ epoch: epochTag(EPOCH), position });
  });

  it("treats an empty cursor as 'from now'", () => {
    expect(parseCursor("")).toBeUndefined();
  });

  it.each(["x", "0123abcd4567.1", "0123abcd4567.-1.2", "0123ABCD4567.1.2", "0123abcd4567.1.2.3"])(
    "refuses %j naming since_cursor",
    (bad) => {
      expect(() => parseCursor(bad)).toThrow(/^since_cursor: is not a cursor this server gave out/);
    },
  );
});
