import { describe, expect, it } from "vitest";
import type { ImportEntry } from "./parse.ts";
import { type ExistingSecret, planImport, rowsToWrite, typeOfValue } from "./plan.ts";

const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);
const entry = (name: string, value: unknown, where = "key 1"): ImportEntry => ({
  name,
  value,
  where,
});

describe("typeOfValue", () => {
  it("makes a string, number or boolean opaque, and a flat object key/value", () => {
    const s = typeOfValue("abc");
    expect("kind" in s && s.kind).toBe("opaque");
    expect("bytes" in s && text(s.bytes)).toBe("abc");
    const n = typeOfValue(5432);
    expect("bytes" in n && text(n.bytes)).toBe("5432");
    const o = typeOfValue({ user: "u", port: 5432, tls: true });
    expect("kind" in o && o.kind).toBe("key_value");
    expect("bytes" in o && text(o.bytes)).toBe('{"user":"u","port":5432,"tls":true}');
  });

  it("refuses a nested object, a list and null, saying why", () => {
    expect(typeOfValue({ a: { b: 1 } })).toEqual({
      refused:
        'Not flat: "a" holds an object; only an object of strings, numbers and booleans becomes a key/value secret.',
    });
    expect(typeOfValue([1])).toEqual({
      refused: "Holds a list; a secret is a string (opaque) or a flat object (key/value).",
    });
    expect(typeOfValue(null)).toMatchObject({ refused: expect.stringContaining("nothing (null)") });
  });
});

describe("planImport", () => {
  const existing = new Map<string, ExistingSecret>([
    ["TOKEN", { id: "s-1", kind: "opaque" }],
    ["db", { id: "s-2", kind: "database_credentials" }],
  ]);

  it("creates new names, and skips existing ones unless a new version is chosen", () => {
    const rows = planImport([entry("NEW", "v"), entry("TOKEN", "t2", "key 2")], existing);
    expect(rows.map((r) => [r.name, r.kind, r.action, r.choices, r.existing?.id])).toEqual([
      ["NEW", "opaque", "create", ["create", "skip"], undefined],
      ["TOKEN", "opaque", "skip", ["skip", "new_version"], "s-1"],
    ]);
    expect(rowsToWrite(rows).map((r) => r.name)).toEqual(["NEW"]);
  });

  it("offers no new version when the value does not fit the existing secret's type", () => {
    const [row] = planImport([entry("db", { host: "h" })], existing);
    expect(row?.choices).toEqual(["skip"]);
    expect(row?.noNewVersion).toBe(
      "The existing secret is database credentials; this value is key/value.",
    );
  });

  it("refuses bad names, nested values, empty and oversized values, and earlier duplicates", () => {
    const rows = planImport(
      [
        entry("has space", "x", "line 1"),
        entry("nested", { a: [1] }, "line 2"),
        entry("EMPTY", "", "line 3"),
        entry("BIG", "x".repeat(65_537), "line 4"),
        entry("DUP", "first", "line 5"),
        entry("DUP", "second", "line 6"),
      ],
      new Map(),
    );
    expect(rows.map((r) => [r.name, r.refused])).toEqual([
      ["has space", expect.stringContaining('character " " at position 4 is not allowed')],
      ["nested", expect.stringContaining('Not flat: "a" holds a list')],
      ["EMPTY", "The value is empty; a secret value needs 1 to 65,536 bytes."],
      ["BIG", "The value is 65,537 bytes; the maximum is 64 KiB (65,536 bytes)."],
      ["DUP", "Given again at line 6; the later value is imported."],
      ["DUP", undefined],
    ]);
    expect(
      rows.filter((r) => r.refused).every((r) => r.action === "skip" && r.choices.length === 1),
    ).toBe(true);
    expect(text(rows[5]?.bytes)).toBe("second");
  });
});
