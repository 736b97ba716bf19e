import { describe, expect, it } from "vitest";
import { DomainError } from "../domain/errors.ts";
import { BodyFields, parseBase64, parseDuration, parseTimestamp, QueryFields } from "./decode.ts";

/**
 * The wire readers of the Scaleway REST API: what Scaleway's clients send
 * is read, and anything else is refused naming the field as the client
 * spelt it (snake_case, dotted inside nested objects), never ignored.
 */

/** The refusal `fn` throws: an invalid_argument naming `field`. */
function refusal(fn: () => unknown): { field: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    const e = err as DomainError;
    expect(e.kind).toBe("invalid_argument");
    return { field: e.field, message: e.message };
  }
  throw new Error("expected a refusal, but nothing was thrown");
}

describe("durations", () => {
  it.each([
    ["1800s", 1800n, 0],
    // The Go SDK's spelling of the same duration.
    ["1800.000000000s", 1800n, 0],
    ["1.5s", 1n, 500_000_000],
    ["0.000000001s", 0n, 1],
    ["31536000s", 31_536_000n, 0],
  ])("reads %s", (text, seconds, nanos) => {
    expect(parseDuration(text, "ttl")).toEqual({ seconds, nanos });
  });

  it.each(["1800", "30m", "-5s", "1.5", "s", "1.0000000001s", " 1800s", "1e3s", ""])(
    "refuses %j naming the field",
    (text) => {
      const { field, message } = refusal(() =>
        parseDuration(text, "ephemeral_policy.time_to_live"),
      );
      expect(field).toBe("ephemeral_policy.time_to_live");
      expect(message).toContain('"1800s"');
    },
  );
});

describe("timestamps", () => {
  it("reads RFC 3339 with microseconds, keeping them", () => {
    const t = parseTimestamp("2026-07-03T15:27:54.805853Z", "expires_at");
    expect(t.seconds).toBe(BigInt(Date.UTC(2026, 6, 3, 15, 27, 54) / 1000));
    expect(t.nanos).toBe(805_000_000 + 853_000);
  });

  it("reads an offset with microseconds, to the same instant as in UTC", () => {
    expect(parseTimestamp("2026-07-03T17:27:54.805853+02:00", "expires_at")).toEqual(
      parseTimestamp("2026-07-03T15:27:54.805853Z", "expires_at"),
    );
    expect(parseTimestamp("2026-07-03T15:27:54.000000001-00:30", "x").nanos).toBe(1);
  });

  it("reads an offset and no fraction", () => {
    const t = parseTimestamp("2026-07-03T17:27:54+02:00", "expires_at");
    expect(t.seconds).toBe(BigInt(Date.UTC(2026, 6, 3, 15, 27, 54) / 1000));
    expect(t.nanos).toBe(0);
  });

  it.each([
    "2026-07-03",
    "2026-07-03 15:27:54Z",
    "1751556474",
    "2026-13-03T15:27:54Z",
    // What a Date would roll over into March 2nd and the next day.
    "2026-02-30T00:00:00Z",
    "2026-07-03T24:00:00Z",
    "2026-07-03T15:27:54+24:00",
    "soon",
  ])("refuses %j naming the field", (text) => {
    const { field, message } = refusal(() =>
      parseTimestamp(text, "ephemeral_properties.expires_at"),
    );
    expect(field).toBe("ephemeral_properties.expires_at");
    expect(message).toContain("RFC 3339");
  });
});

describe("base64", () => {
  it.each([
    ["", ""],
    ["YQ==", "a"],
    ["YWI=", "ab"],
    ["YWJj", "abc"],
    ["+/+/", "\u00fb\u00ff\u00bf"],
  ])("reads standard base64 %j", (text, bytes) => {
    expect(Buffer.from(parseBase64(text, "data")).toString("latin1")).toBe(bytes);
  });

  it.each([
    ["unpadded", "YQ"],
    ["url-safe alphabet", "-_-_"],
    ["whitespace", "YWJj\n"],
    ["a lone character", "Y"],
    ["padding in the middle", "YQ==YWJj"],
    ["not base64 at all", "not base64!"],
  ])("refuses %s", (_why, text) => {
    const { field, message } = refusal(() => parseBase64(text, "data"));
    expect(field).toBe("data");
    expect(message).toContain("standard base64");
  });
});

describe("a JSON body", () => {
  it("reads an empty body as {}, as the action endpoints may send", () => {
    expect(() => BodyFields.parse("").done()).not.toThrow();
    expect(() => BodyFields.parse("  {}  ").done()).not.toThrow();
  });

  it.each([
    ["malformed JSON", "{"],
    ["an array", "[]"],
    ["a string", '"x"'],
    ["null", "null"],
  ])("refuses %s naming the body", (_why, text) => {
    const { field, message } = refusal(() => BodyFields.parse(text));
    expect(field).toBe("body");
    expect(message).toContain("JSON object");
  });

  it("reads every kind of field, null as absent", () => {
    const b = BodyFields.parse(
      JSON.stringify({
        name: "n",
        protected: true,
        data_crc32: 4294967295,
        tags: ["a", "b"],
        description: null,
        ephemeral_policy: { time_to_live: "1800.000000000s", expires_once_accessed: false },
      }),
    );
    expect(b.string("name")).toBe("n");
    expect(b.boolean("protected")).toBe(true);
    expect(b.uint32("data_crc32")).toBe(4294967295);
    expect(b.strings("tags")).toEqual(["a", "b"]);
    expect(b.string("description")).toBeUndefined();
    const p = b.object("ephemeral_policy");
    expect(p?.duration("time_to_live")).toEqual({ seconds: 1800n, nanos: 0 });
    expect(p?.boolean("expires_once_accessed")).toBe(false);
    expect(() => p?.done()).not.toThrow();
    expect(() => b.done()).not.toThrow();
  });

  it.each([
    ["a number as a string", { name: 1 }, (b: BodyFields) => b.string("name"), "a string"],
    [
      "a string as a boolean",
      { protected: "true" },
      (b: BodyFields) => b.boolean("protected"),
      "a boolean",
    ],
    [
      "a negative checksum",
      { data_crc32: -1 },
      (b: BodyFields) => b.uint32("data_crc32"),
      "whole number",
    ],
    [
      "a checksum past 32 bits",
      { data_crc32: 2 ** 32 },
      (b: BodyFields) => b.uint32("data_crc32"),
      "whole number",
    ],
    [
      "a fractional checksum",
      { data_crc32: 1.5 },
      (b: BodyFields) => b.uint32("data_crc32"),
      "whole number",
    ],
    [
      "a checksum as a string",
      { data_crc32: "12" },
      (b: BodyFields) => b.uint32("data_crc32"),
      "whole number",
    ],
    [
      "a tag that is no string",
      { tags: ["a", 1] },
      (b: BodyFields) => b.strings("tags"),
      "array of strings",
    ],
    ["tags as a string", { tags: "a" }, (b: BodyFields) => b.strings("tags"), "array of strings"],
    [
      "a policy as an array",
      { ephemeral_policy: [] },
      (b: BodyFields) => b.object("ephemeral_policy"),
      "JSON object",
    ],
  ])("refuses %s naming the field", (_why, body, read, kind) => {
    const b = new BodyFields(body as Record<string, unknown>);
    const { field, message } = refusal(() => read(b));
    expect(field).toBe(Object.keys(body)[0]);
    expect(message).toContain(kind);
  });

  it("names a nested field by its dotted path", () => {
    const b = BodyFields.parse('{"ephemeral_policy":{"action":7,"time_to_live":"1800s"}}');
    const p = b.object("ephemeral_policy");
    expect(refusal(() => p?.string("action")).field).toBe("ephemeral_policy.action");
    const bad = BodyFields.parse('{"ephemeral_policy":{"time_to_live":"30m"}}').object(
      "ephemeral_policy",
    );
    expect(refusal(() => bad?.duration("time_to_live")).field).toBe(
      "ephemeral_policy.time_to_live",
    );
  });

  it("refuses an unknown field by name, at the top and nested", () => {
    const b = BodyFields.parse('{"name":"n","protect":true}');
    b.string("name");
    const top = refusal(() => b.done());
    expect(top.field).toBe("protect");
    expect(top.message).toBe("protect: is not a field of this request");
    const nested = BodyFields.parse('{"ephemeral_policy":{"ttl":"1s"}}').object("ephemeral_policy");
    expect(refusal(() => nested?.done()).field).toBe("ephemeral_policy.ttl");
  });

  it("never repeats a long refused value whole", () => {
    const long = `${"9".repeat(100)}x`;
    const { message } = refusal(() => parseDuration(long, "time_to_live"));
    expect(message).not.toContain(long);
    expect(message.length).toBeLessThan(200);
  });
});

describe("a query string", () => {
  const q = (s: string) => new QueryFields(new URLSearchParams(s));

  it("reads repeated keys as an array, and single values once", () => {
    const query = q("tags=a&tags=b&status=enabled&page=2&scheduled_for_deletion=false");
    expect(query.all("tags")).toEqual(["a", "b"]);
    expect(query.all("status")).toEqual(["enabled"]);
    expect(query.uint32("page")).toBe(2);
    expect(query.boolean("scheduled_for_deletion")).toBe(false);
    expect(() => query.done()).not.toThrow();
  });

  it("reads an absent parameter as undefined, an absent array as empty", () => {
    const query = q("");
    expect(query.uint32("page")).toBeUndefined();
    expect(query.boolean("ephemeral")).toBeUndefined();
    expect(query.all("tags")).toEqual([]);
  });

  it.each([
    [
      "a single parameter given twice",
      "page=1&page=2",
      (x: QueryFields) => x.uint32("page"),
      "page",
      "once",
    ],
    [
      "a page that is no number",
      "page=first",
      (x: QueryFields) => x.uint32("page"),
      "page",
      "whole number",
    ],
    [
      "a negative page size",
      "page_size=-1",
      (x: QueryFields) => x.uint32("page_size"),
      "page_size",
      "whole number",
    ],
    [
      "a page past 32 bits",
      "page=4294967296",
      (x: QueryFields) => x.uint32("page"),
      "page",
      "whole number",
    ],
    [
      "a boolean spelt 1",
      "ephemeral=1",
      (x: QueryFields) => x.boolean("ephemeral"),
      "ephemeral",
      "true or false",
    ],
    [
      "a boolean spelt True",
      "ephemeral=True",
      (x: QueryFields) => x.boolean("ephemeral"),
      "ephemeral",
      "true or false",
    ],
  ])("refuses %s naming it", (_why, text, read, name, words) => {
    const { field, message } = refusal(() => read(q(text)));
    expect(field).toBe(name);
    expect(message).toContain(words);
  });

  it("refuses an unknown parameter by name", () => {
    const query = q("page=1&pagesize=10");
    query.uint32("page");
    const { field, message } = refusal(() => query.done());
    expect(field).toBe("pagesize");
    expect(message).toBe("pagesize: is not a parameter of this request");
  });
});
