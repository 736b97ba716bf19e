import { describe, expect, it } from "vitest";
import { generateToken } from "../crypto/tokens.ts";
import { withLastCharChanged } from "./tokens.ts";

describe("withLastCharChanged", () => {
  it("always changes the token, whatever its last character", () => {
    const base = generateToken().value.slice(0, -1);
    for (const last of "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
      const token = `${base}${last}`;
      const bad = withLastCharChanged(token);
      expect(bad, `token ending in ${last}`).not.toBe(token);
      expect(bad).toHaveLength(token.length);
    }
  });
});
