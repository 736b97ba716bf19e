import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import {
  parseDuration,
  parseFolder,
  parsePositive,
  parseRevision,
  parseSecretRef,
  parseTime,
} from "./refs.ts";

function refused(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error("expected a UsageError");
}

describe("parseSecretRef", () => {
  it("splits /path/name at the last slash", () => {
    expect(parseSecretRef("/prod/db")).toEqual({
      kind: "path",
      path: "/prod",
      name: "db",
      text: "/prod/db",
    });
    expect(parseSecretRef("/a/b/c.d_e-f")).toMatchObject({ path: "/a/b", name: "c.d_e-f" });
  });

  it("puts /name in the root folder", () => {
    expect(parseSecretRef("/db")).toMatchObject({ kind: "path", path: "/", name: "db" });
  });

  it("takes a UUID as an id, lower-cased", () => {
    expect(parseSecretRef("0F8FAD5B-D9CB-469F-A165-70867728950E")).toMatchObject({
      kind: "id",
      id: "0f8fad5b-d9cb-469f-a165-70867728950e",
    });
  });

  it("refuses a path without its leading slash, naming the rule and the fix", () => {
    const err = refused(() => parseSecretRef("prod/db"));
    expect(err.message).toBe(
      'bad secret "prod/db": a secret is named by its path and name, starting with "/" (e.g. /prod/db), or by its id (a UUID)',
    );
    expect(err.hint).toBe('did you mean "/prod/db"?');
    expect(err.exitCode).toBe(2);
  });

  it("refuses folders, empty segments and names that break the rule", () => {
    expect(refused(() => parseSecretRef("/")).message).toContain("that is a folder");
    expect(refused(() => parseSecretRef("/prod/")).message).toContain('ends with "/"');
    expect(refused(() => parseSecretRef("/prod//db")).message).toContain('empty segment ("//")');
    expect(refused(() => parseSecretRef("/prod/d b")).message).toContain(
      '"d b" is not a valid name; each part must be 1-255 letters, digits',
    );
    expect(refused(() => parseSecretRef("/prod/..")).message).toContain('".." is not a valid name');
    expect(refused(() => parseSecretRef(`/${"x".repeat(256)}`)).message).toContain(
      "not a valid name",
    );
    expect(refused(() => parseSecretRef("")).message).toContain("empty secret reference");
  });

  it("refuses more than 32 folders", () => {
    const deep = `/${Array.from({ length: 33 }, () => "a").join("/")}/db`;
    expect(refused(() => parseSecretRef(deep)).message).toContain("at most 32 folders");
    expect(parseSecretRef(`/${Array.from({ length: 32 }, () => "a").join("/")}/db`).kind).toBe(
      "path",
    );
  });
});

describe("parseFolder", () => {
  it("normalises one trailing slash and keeps the root", () => {
    expect(parseFolder("/")).toBe("/");
    expect(parseFolder("/prod/")).toBe("/prod");
    expect(parseFolder("/prod/eu")).toBe("/prod/eu");
  });

  it("refuses a folder without a leading slash", () => {
    expect(refused(() => parseFolder("prod", "--path")).message).toBe(
      'bad --path "prod": a folder starts with "/" (e.g. /prod)',
    );
  });
});

describe("parseRevision", () => {
  it("takes numbers and the two selectors", () => {
    for (const r of ["1", "42", "latest", "latest_enabled", "2147483647"])
      expect(parseRevision(r)).toBe(r);
  });

  it("refuses anything else", () => {
    for (const r of ["0", "-1", "01", "1.5", "newest", "2147483648", ""]) {
      expect(refused(() => parseRevision(r)).message).toContain(`bad revision "${r}"`);
    }
  });
});

describe("parseDuration", () => {
  it("reads units and sums", () => {
    expect(parseDuration("500ms", "--ttl")).toBe(500);
    expect(parseDuration("30s", "--ttl")).toBe(30_000);
    expect(parseDuration("1h30m", "--ttl")).toBe(5_400_000);
    expect(parseDuration("7d", "--ttl")).toBe(604_800_000);
  });

  it("refuses text without units, naming the flag", () => {
    expect(refused(() => parseDuration("10", "--ttl")).message).toBe(
      '--ttl must be a duration like 500ms, 30s, 5m, 1h30m or 7d (got "10")',
    );
    expect(() => parseDuration("1 h", "--ttl")).toThrow(UsageError);
  });
});

describe("parseTime", () => {
  it("reads ISO times and durations ago", () => {
    expect(parseTime("2030-01-02T03:04:05Z", "--since").toISOString()).toBe(
      "2030-01-02T03:04:05.000Z",
    );
    expect(parseTime("1h", "--since", 10_000_000).getTime()).toBe(10_000_000 - 3_600_000);
  });

  it("refuses anything else", () => {
    expect(refused(() => parseTime("yesterday", "--since")).message).toContain(
      "--since must be a time",
    );
  });
});

describe("parsePositive", () => {
  it("checks the range", () => {
    expect(parsePositive(undefined, "--page", 10)).toBeUndefined();
    expect(parsePositive("10", "--page", 10)).toBe(10);
    expect(() => parsePositive("11", "--page", 10)).toThrow(
      "--page must be a whole number from 1 to 10",
    );
    expect(() => parsePositive("0", "--page", 10)).toThrow(UsageError);
  });
});
