import { Role } from "@coffer/api";
import { type ExistingSecret, type ImportEntry, planImport } from "@coffer/console/import";
import { describe, expect, it } from "vitest";
import { parseFileFormat } from "./file-format.ts";
import {
  type Comparison,
  importJson,
  importRows,
  importTable,
  type RowResult,
  rowsToApply,
  sameValue,
} from "./import-plan.ts";
import { mayReadPayloads } from "./import-run.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const entry = (name: string, value: unknown, line: number): ImportEntry => ({
  name,
  value,
  where: `line ${line}`,
});

const existing = new Map<string, ExistingSecret>([
  ["SAME", { id: "s-same", kind: "opaque" }],
  ["CHANGED", { id: "s-changed", kind: "opaque" }],
  ["UNREAD", { id: "s-unread", kind: "opaque" }],
  ["CREDS", { id: "s-creds", kind: "database_credentials" }],
]);
const entries = [
  entry("NEW", "n3w-s3cret", 1),
  entry("SAME", "same-s3cret", 2),
  entry("CHANGED", "changed-s3cret", 3),
  entry("UNREAD", "unread-s3cret", 4),
  entry("CREDS", "creds-s3cret-as-text", 5),
  entry("DUP", "first-s3cret", 6),
  entry("DUP", "second-s3cret", 7),
  entry("EMPTY", "", 8),
];
const compared = new Map<string, Comparison>([
  ["SAME", { kind: "equal" }],
  ["CHANGED", { kind: "different" }],
  ["UNREAD", { kind: "not_compared", why: "single-access: not read" }],
  ["CREDS", { kind: "different" }],
]);

describe("importRows", () => {
  it("without --new-versions: creates new names, leaves existing secrets, refuses by the console's rules", () => {
    const rows = importRows(planImport(entries, existing), compared, false);
    expect(rows.map((r) => [r.name, r.where, r.kind, r.action])).toEqual([
      ["NEW", "line 1", "opaque", "create"],
      ["SAME", "line 2", "opaque", "unchanged"],
      ["CHANGED", "line 3", "opaque", "exists"],
      ["UNREAD", "line 4", "opaque", "exists"],
      ["CREDS", "line 5", "opaque", "exists"],
      ["DUP", "line 6", undefined, "refused"],
      ["DUP", "line 7", "opaque", "create"],
      ["EMPTY", "line 8", "opaque", "refused"],
    ]);
    expect(rows[2]?.note).toBe(
      "Differs from the newest enabled version; --new-versions adds it as a new version.",
    );
    expect(rows[3]?.note).toContain("single-access: not read");
    expect(rows[4]?.note).toContain("The existing secret is database credentials");
    expect(rows[5]?.note).toBe("Given again at line 7; the later value is imported.");
    expect(rowsToApply(rows).map((r) => [r.name, r.where])).toEqual([
      ["NEW", "line 1"],
      ["DUP", "line 7"],
    ]);
    expect(new TextDecoder().decode(rowsToApply(rows)[1]?.bytes)).toBe("second-s3cret");
  });

  it("with --new-versions: adds versions where the value differs or was not read, never where it is unchanged", () => {
    const rows = importRows(planImport(entries, existing), compared, true);
    expect(rows.map((r) => [r.name, r.action, r.secretId])).toEqual([
      ["NEW", "create", undefined],
      ["SAME", "unchanged", undefined],
      ["CHANGED", "new_version", "s-changed"],
      ["UNREAD", "new_version", "s-unread"],
      ["CREDS", "refused", undefined],
      ["DUP", "refused", undefined],
      ["DUP", "create", undefined],
      ["EMPTY", "refused", undefined],
    ]);
  });

  it("prints the preview and the result without a value", () => {
    const rows = importRows(planImport(entries, existing), compared, true);
    const results = new Map<(typeof rows)[number], RowResult>();
    const [created, , changed, unread] = rows;
    if (!created || !changed || !unread) throw new Error("rows missing");
    results.set(created, { outcome: "created", secretId: "s-new" });
    results.set(changed, { outcome: "new_version", revision: 2 });
    results.set(unread, { outcome: "failed", error: "version quota reached (RESOURCE_EXHAUSTED)" });
    const table = importTable(rows, results);
    const json = importJson({ path: "/prod", format: "dotenv", dryRun: false }, rows, results);
    for (const text of [importTable(rows), table, json]) {
      expect(text).not.toMatch(/s3cret/);
    }
    expect(table.split("\n").slice(0, 4)).toEqual([
      "NAME     TYPE    ACTION       RESULT         DETAIL",
      "NEW      opaque  create       created        line 1",
      "SAME     opaque  unchanged    -              line 2: The newest enabled version holds this value.",
      "CHANGED  opaque  new version  new version 2  line 3: Differs from the newest enabled version.",
    ]);
    expect(table).toContain(
      "UNREAD   opaque  new version  FAILED         line 4: version quota reached (RESOURCE_EXHAUSTED)",
    );
    const parsed = JSON.parse(json) as {
      rows: { name: string; action: string; result?: unknown }[];
    };
    expect(parsed.rows[0]).toEqual({
      name: "NEW",
      where: "line 1",
      type: "opaque",
      action: "create",
      note: null,
      result: { outcome: "created", secretId: "s-new" },
    });
    expect(parsed.rows[5]).toMatchObject({ name: "DUP", action: "refused", type: null });
  });
});

describe("sameValue", () => {
  it("compares key/value payloads as JSON and anything else byte for byte", () => {
    expect(
      sameValue("key_value", utf8('{"a":"1","b":2}'), "key_value", utf8('{ "b": 2, "a": "1" }')),
    ).toBe(true);
    expect(sameValue("key_value", utf8('{"a":"1"}'), "key_value", utf8('{"a":1}'))).toBe(false);
    expect(sameValue("opaque", utf8("x"), "opaque", utf8("x"))).toBe(true);
    expect(sameValue("opaque", utf8("x"), "opaque", utf8("x "))).toBe(false);
    expect(sameValue("key_value", utf8('{"a":1}'), "opaque", utf8('{ "a": 1 }'))).toBe(false);
  });
});

describe("mayReadPayloads", () => {
  const grant = (role: Role, projectId = "p", pathPrefix = "/") => ({
    projectId,
    role,
    pathPrefix,
  });
  it("follows the server's roles, projects and path prefixes", () => {
    expect(mayReadPayloads([grant(Role.ADMIN, "")], "p", "/prod")).toBe(true);
    expect(mayReadPayloads([grant(Role.FULL_ACCESS)], "p", "/prod")).toBe(true);
    expect(mayReadPayloads([grant(Role.SECRET_ACCESS, "p", "/prod")], "p", "/prod/eu")).toBe(true);
    expect(mayReadPayloads([grant(Role.SECRET_ACCESS, "p", "/prod")], "p", "/production")).toBe(
      false,
    );
    expect(mayReadPayloads([grant(Role.SECRET_WRITE)], "p", "/prod")).toBe(false);
    expect(mayReadPayloads([grant(Role.READ_ONLY)], "p", "/prod")).toBe(false);
    expect(mayReadPayloads([grant(Role.FULL_ACCESS, "q")], "p", "/prod")).toBe(false);
    expect(mayReadPayloads([grant(Role.FULL_ACCESS, "", "/")], "p", "/prod")).toBe(false);
  });
});

describe("parseFileFormat", () => {
  it("takes dotenv, env, json, yaml and yml, and names the flag otherwise", () => {
    expect(["dotenv", "env", "JSON", "yaml", "yml"].map(parseFileFormat)).toEqual([
      "env",
      "env",
      "json",
      "yaml",
      "yaml",
    ]);
    expect(() => parseFileFormat("toml")).toThrow(
      '--format must be dotenv, json or yaml (got "toml")',
    );
  });
});
