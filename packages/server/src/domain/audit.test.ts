import { describe, expect, it } from "vitest";
import { newCallAudit } from "./audit.ts";

describe("newCallAudit", () => {
  it("gives the call's event a time-ordered id (UUID version 7), so that audit inserts append to the primary key's index", () => {
    const before = Date.now();
    const [a, b] = [newCallAudit("AccessSecretVersion", "r1"), newCallAudit("GetSecret", "r2")];
    for (const { id } of [a, b]) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const ms = Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(Date.now());
    }
    expect(a.id).not.toBe(b.id);
  });
});
