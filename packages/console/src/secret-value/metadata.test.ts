import { describe, expect, it } from "vitest";
import {
  nameProblem,
  normalizePath,
  parseTtl,
  pathProblem,
  splitTags,
  tagsProblem,
} from "./metadata.ts";

describe("pathProblem", () => {
  it("accepts / and /seg(/seg)*, with one trailing slash", () => {
    for (const ok of ["/", "/a", "/prod/db", "/a.b/c_d/e-f/", `/${"a/".repeat(31)}b`]) {
      expect(pathProblem(ok)).toBeUndefined();
    }
    expect(normalizePath("/prod/")).toBe("/prod");
    expect(normalizePath("")).toBe("/");
  });

  it('quotes the server\'s rule for a path without a leading slash: must start with "/"', () => {
    expect(pathProblem("prod")).toBe('Path must start with "/" (got "prod").');
    expect(pathProblem("")).toMatch(/^Path must start with "\/"/);
  });

  it("refuses empty segments, bad characters, too many segments and too long a path", () => {
    expect(pathProblem("/a//b")).toBe('Path must not contain empty segments ("//").');
    expect(pathProblem("/a/b c")).toMatch(/^Path segment 2 must be 1-255 characters of letters/);
    expect(pathProblem("/a/..")).toBe('Path segment 2 must not be "." or "..".');
    expect(pathProblem(`/${"a/".repeat(32)}b`)).toBe(
      "Path must have at most 32 segments (got 33).",
    );
    expect(pathProblem(`/${"a".repeat(1024)}`)).toBe(
      "Path must be at most 1024 characters (got 1025).",
    );
  });
});

describe("names, tags and time to live", () => {
  it("checks names as the server does", () => {
    expect(nameProblem("db-password.v2_x")).toBeUndefined();
    expect(nameProblem("")).toMatch(/^Enter a name/);
    expect(nameProblem("a/b")).toMatch(/character "\/" at position 2 is not allowed/);
    expect(nameProblem("..")).toBe('Name must not be "." or "..".');
  });

  it("splits tags on commas and checks them", () => {
    expect(splitTags(" prod, db ,, team a")).toEqual(["prod", "db", "team a"]);
    expect(tagsProblem(["ok"])).toBeUndefined();
    expect(tagsProblem(["x".repeat(129)])).toMatch(/1-128 printable characters/);
    expect(tagsProblem(Array.from({ length: 65 }, (_, i) => `t${i}`))).toBe(
      "A secret may have at most 64 tags.",
    );
  });

  it("reads a time to live of up to one year", () => {
    expect(parseTtl("30", "minutes")).toEqual({ ms: 1_800_000 });
    expect(parseTtl("365", "days")).toEqual({ ms: 31_536_000_000 });
    expect(parseTtl("8760", "hours")).toEqual({ ms: 31_536_000_000 });
    expect(parseTtl("366", "days")).toEqual({
      problem: "The time to live can be at most one year (365 days, 8,760 hours).",
    });
    expect(parseTtl("0", "hours")).toMatchObject({ problem: expect.stringMatching(/at least/) });
    expect(parseTtl("1.5", "hours")).toMatchObject({
      problem: expect.stringMatching(/whole number/),
    });
  });
});
