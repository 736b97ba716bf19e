import { describe, expect, it } from "vitest";
import { DomainError } from "./errors.ts";
import {
  checkCrc32,
  normalizePath,
  normalizeTags,
  parseRevision,
  validateDescription,
  validateName,
  validatePage,
  validateText,
  validateTimeToLive,
  validateUuid,
} from "./validation.ts";

/** Runs `fn`, expects an invalid_argument on `field`, and returns its message. */
function invalidMessage(fn: () => unknown, field: string): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    const domainError = error as DomainError;
    expect(domainError.kind).toBe("invalid_argument");
    expect(domainError.field).toBe(field);
    expect(domainError.message.startsWith(`${field}: `)).toBe(true);
    return domainError.message;
  }
  throw new Error(`expected ${field} to be rejected`);
}

const NAME_RULE = 'must be 1-255 characters of letters, digits, ".", "_", "-"';

/** A valid path of exactly `length` characters, in segments of at most 100. */
function pathOfLength(length: number): string {
  let path = "";
  while (length - path.length > 101) path += `/${"a".repeat(100)}`;
  return `${path}/${"b".repeat(length - path.length - 1)}`;
}

describe("validateName", () => {
  it("accepts letters, digits, dot, underscore and hyphen", () => {
    for (const name of ["a", "Z", "0", "db-password", "tls_cert.v2", "...", ".env", "a..b"]) {
      expect(validateName(name)).toBe(name);
    }
  });

  it("accepts 255 characters and refuses 256", () => {
    expect(validateName("x".repeat(255))).toBe("x".repeat(255));
    expect(invalidMessage(() => validateName("x".repeat(256)), "name")).toBe(
      `name: ${NAME_RULE} (got 256 characters)`,
    );
  });

  it("requires a name", () => {
    expect(invalidMessage(() => validateName(""), "name")).toBe(
      'name: is required: 1-255 characters of letters, digits, ".", "_", "-"',
    );
  });

  it('refuses "." and ".."', () => {
    expect(invalidMessage(() => validateName("."), "name")).toContain('must not be "." or ".."');
    expect(invalidMessage(() => validateName(".."), "name")).toContain('must not be "." or ".."');
  });

  it("names the character it refuses and where", () => {
    expect(invalidMessage(() => validateName("my secret"), "name")).toBe(
      `name: ${NAME_RULE} (got "my secret": character " " (U+0020) at position 3 is not allowed)`,
    );
    expect(invalidMessage(() => validateName("café"), "name")).toContain(
      '"é" (U+00E9) at position 4',
    );
    for (const name of ["a/b", "a\\b", "a:b", "a\u0000b", "a\u200bb", "😀"]) {
      expect(invalidMessage(() => validateName(name), "name")).toContain("is not allowed");
    }
  });

  it("uses the field name it is given", () => {
    expect(invalidMessage(() => validateName("", "secret.name"), "secret.name")).toMatch(
      /^secret\.name: is required/,
    );
  });
});

describe("normalizePath", () => {
  it("defaults to the root", () => {
    expect(normalizePath("")).toBe("/");
    expect(normalizePath("/")).toBe("/");
  });

  it("keeps valid paths and drops one trailing slash", () => {
    expect(normalizePath("/prod")).toBe("/prod");
    expect(normalizePath("/prod/db/")).toBe("/prod/db");
    expect(normalizePath("/a.b/c_d/e-f/...")).toBe("/a.b/c_d/e-f/...");
  });

  it('must start with "/"', () => {
    expect(invalidMessage(() => normalizePath("prod/db"), "path")).toBe(
      'path: must start with "/" (got "prod/db")',
    );
  });

  it("refuses empty segments", () => {
    for (const path of ["//", "/a//b", "/a//", "//a"]) {
      expect(invalidMessage(() => normalizePath(path), "path")).toContain(
        'must not contain empty segments ("//")',
      );
    }
  });

  it('refuses "." and ".." segments and bad characters, naming the segment', () => {
    expect(invalidMessage(() => normalizePath("/a/./b"), "path")).toBe(
      'path: segment 2 must not be "." or ".." (got ".")',
    );
    expect(invalidMessage(() => normalizePath("/a/../b"), "path")).toContain(
      'segment 2 must not be "." or ".."',
    );
    expect(invalidMessage(() => normalizePath("/a/b c"), "path")).toContain(
      `segment 2 ${NAME_RULE}`,
    );
    expect(invalidMessage(() => normalizePath(`/a/${"s".repeat(256)}`), "path")).toBe(
      `path: segment 2 ${NAME_RULE} (got 256 characters)`,
    );
  });

  it("accepts 32 segments and refuses 33", () => {
    const segments32 = "/s".repeat(32);
    expect(normalizePath(segments32)).toBe(segments32);
    expect(normalizePath(`${segments32}/`)).toBe(segments32);
    expect(invalidMessage(() => normalizePath("/s".repeat(33)), "path")).toBe(
      "path: must have at most 32 segments (got 33)",
    );
  });

  it("accepts 1024 characters and refuses 1025", () => {
    const path1024 = pathOfLength(1024);
    expect(path1024).toHaveLength(1024);
    expect(normalizePath(path1024)).toBe(path1024);
    // The limit applies after the trailing slash is dropped.
    expect(normalizePath(`${path1024}/`)).toBe(path1024);
    const path1025 = pathOfLength(1025);
    expect(path1025).toHaveLength(1025);
    expect(invalidMessage(() => normalizePath(path1025), "path")).toBe(
      "path: must be at most 1024 characters (got 1025)",
    );
  });

  it("uses the field name it is given", () => {
    invalidMessage(() => normalizePath("x", "folder"), "folder");
  });
});

describe("normalizeTags", () => {
  it("folds duplicates and sorts", () => {
    expect(normalizeTags(["prod", "db", "prod", "Prod", "api"])).toEqual([
      "Prod",
      "api",
      "db",
      "prod",
    ]);
    expect(normalizeTags([])).toEqual([]);
  });

  it("accepts Unicode letters, symbols and inner spaces", () => {
    expect(normalizeTags(["café", "日本", "team: payments", "🔑"])).toEqual(
      ["café", "日本", "team: payments", "🔑"].sort(),
    );
  });

  it("accepts 128 characters and refuses 129, counting code points", () => {
    expect(normalizeTags(["t".repeat(128)])).toEqual(["t".repeat(128)]);
    // 128 emoji are 256 UTF-16 units but 128 characters.
    expect(normalizeTags(["🔑".repeat(128)])).toEqual(["🔑".repeat(128)]);
    expect(invalidMessage(() => normalizeTags(["ok", "t".repeat(129)]), "tags[1]")).toBe(
      "tags[1]: must be 1-128 printable characters (got 129 characters)",
    );
    invalidMessage(() => normalizeTags(["🔑".repeat(129)]), "tags[0]");
  });

  it("refuses empty and whitespace-only tags", () => {
    expect(invalidMessage(() => normalizeTags(["a", "b", ""]), "tags[2]")).toBe(
      "tags[2]: must be 1-128 printable characters (got an empty string)",
    );
    expect(invalidMessage(() => normalizeTags(["   "]), "tags[0]")).toBe(
      "tags[0]: must be 1-128 printable characters, not only whitespace",
    );
    invalidMessage(() => normalizeTags(["\u00a0\u3000"]), "tags[0]");
  });

  it("refuses C0, DEL, C1 controls and lone surrogates", () => {
    expect(invalidMessage(() => normalizeTags(["a", "b\u0007"]), "tags[1]")).toBe(
      'tags[1]: must be 1-128 printable characters (character "\\u0007" (U+0007) at position 2 is a control character)',
    );
    for (const tag of ["a\nb", "\t", "x\u007f", "x\u0085", "x\u009f", "x\ud800"]) {
      expect(invalidMessage(() => normalizeTags([tag]), "tags[0]")).toContain(
        "is a control character",
      );
    }
  });

  it("accepts 64 distinct tags and refuses 65, counted after folding", () => {
    const tags64 = Array.from({ length: 64 }, (_, i) => `t${String(i).padStart(2, "0")}`);
    expect(normalizeTags(tags64)).toEqual(tags64);
    expect(normalizeTags([...tags64, "t00", "t63"])).toEqual(tags64);
    expect(invalidMessage(() => normalizeTags([...tags64, "t64"]), "tags")).toBe(
      "tags: must have at most 64 distinct tags (got 65)",
    );
  });

  it("uses the field name it is given", () => {
    invalidMessage(() => normalizeTags(["ok", ""], "add_tags"), "add_tags[1]");
  });
});

describe("validateText", () => {
  it("accepts any well-formed text, control characters other than NUL included", () => {
    for (const text of ["", "a\nb\tc", "\u0001\u001f\u007f\u0085", "🔑 é 中", "\uFFFD"]) {
      expect(validateText(text, "description")).toBe(text);
    }
  });

  it("refuses a NUL, which Postgres text cannot hold", () => {
    expect(invalidMessage(() => validateText("ab\u0000", "description"), "description")).toBe(
      "description: must not contain the NUL character (U+0000) (found at position 3)",
    );
  });

  it("refuses lone surrogates, which have no UTF-8 form", () => {
    expect(invalidMessage(() => validateText("a\ud800", "method"), "method")).toBe(
      "method: must be valid Unicode text (lone surrogate U+D800 at position 2)",
    );
    expect(invalidMessage(() => validateText("\udc00🔑", "name"), "name")).toBe(
      "name: must be valid Unicode text (lone surrogate U+DC00 at position 1)",
    );
  });

  it("is applied to descriptions", () => {
    invalidMessage(() => validateDescription("x\u0000"), "description");
    invalidMessage(
      () => validateDescription("\ud83d", "first_version.description"),
      "first_version.description",
    );
  });
});

describe("validateDescription", () => {
  it("accepts empty text and up to 1024 characters", () => {
    expect(validateDescription("")).toBe("");
    expect(validateDescription("d".repeat(1024))).toBe("d".repeat(1024));
    expect(validateDescription("é".repeat(1024))).toBe("é".repeat(1024));
    expect(validateDescription("🔑".repeat(1024))).toBe("🔑".repeat(1024));
  });

  it("refuses 1025 characters, counting code points", () => {
    expect(invalidMessage(() => validateDescription("d".repeat(1025)), "description")).toBe(
      "description: must be at most 1024 characters (got 1025)",
    );
    expect(invalidMessage(() => validateDescription("🔑".repeat(1025)), "description")).toBe(
      "description: must be at most 1024 characters (got 1025)",
    );
  });

  it("uses the field name it is given", () => {
    invalidMessage(
      () => validateDescription("d".repeat(1025), "version.description"),
      "version.description",
    );
  });
});

describe("validateUuid", () => {
  const uuid = "0b6d4f2e-8c1a-4e3b-9f7d-2a5c6e8b1d04";

  it("accepts canonical UUIDs and lowercases them", () => {
    expect(validateUuid(uuid, "secret_id")).toBe(uuid);
    expect(validateUuid(uuid.toUpperCase(), "secret_id")).toBe(uuid);
    expect(validateUuid("00000000-0000-0000-0000-000000000000", "project_id")).toBe(
      "00000000-0000-0000-0000-000000000000",
    );
  });

  it("requires a value", () => {
    expect(invalidMessage(() => validateUuid("", "project_id"), "project_id")).toBe(
      "project_id: is required",
    );
  });

  it("refuses other spellings", () => {
    for (const value of [
      "not-a-uuid",
      uuid.replaceAll("-", ""),
      `{${uuid}}`,
      `urn:uuid:${uuid}`,
      ` ${uuid}`,
      `${uuid.slice(0, -1)}g`,
    ]) {
      expect(invalidMessage(() => validateUuid(value, "secret_id"), "secret_id")).toContain(
        "must be a UUID",
      );
    }
  });
});

describe("parseRevision", () => {
  it("parses numbers, latest and latest_enabled", () => {
    expect(parseRevision("1")).toEqual({ kind: "number", revision: 1 });
    expect(parseRevision("42")).toEqual({ kind: "number", revision: 42 });
    expect(parseRevision("2147483647")).toEqual({ kind: "number", revision: 2147483647 });
    expect(parseRevision("latest")).toEqual({ kind: "latest" });
    expect(parseRevision("latest_enabled")).toEqual({ kind: "latest_enabled" });
  });

  it("requires a value", () => {
    expect(invalidMessage(() => parseRevision(""), "revision")).toBe(
      'revision: is required: a number, "latest" or "latest_enabled"',
    );
  });

  it("refuses zero, signs, leading zeros, fractions, overflow and other words", () => {
    for (const value of [
      "0",
      "-1",
      "+1",
      "01",
      "1.0",
      "1e3",
      " 1",
      "2147483648",
      "99999999999999999999",
      "LATEST",
      "latest-enabled",
    ]) {
      expect(invalidMessage(() => parseRevision(value), "revision")).toContain(
        'must be a revision number (1 to 2147483647), "latest" or "latest_enabled"',
      );
    }
  });

  it("uses the field name it is given", () => {
    invalidMessage(() => parseRevision("x", "version"), "version");
  });
});

describe("validateTimeToLive", () => {
  const day = 24 * 60 * 60 * 1000;
  const field = "ephemeral_policy.time_to_live";

  it("accepts 1 second to 365 days inclusive", () => {
    expect(validateTimeToLive(1000)).toBe(1000);
    expect(validateTimeToLive(1500)).toBe(1500);
    expect(validateTimeToLive(365 * day)).toBe(365 * day);
  });

  it("refuses 999 ms and 365 days + 1 ms", () => {
    expect(invalidMessage(() => validateTimeToLive(999), field)).toBe(
      `${field}: must be between 1 second and 365 days (got 999 ms)`,
    );
    expect(invalidMessage(() => validateTimeToLive(365 * day + 1), field)).toBe(
      `${field}: must be between 1 second and 365 days (got ${365 * day + 1} ms)`,
    );
    for (const ms of [0, -1000, Number.NaN, Number.POSITIVE_INFINITY]) {
      invalidMessage(() => validateTimeToLive(ms), field);
    }
  });

  it("refuses fractions of a millisecond", () => {
    expect(invalidMessage(() => validateTimeToLive(1000.5), field)).toBe(
      `${field}: must be a whole number of milliseconds (got 1000.5 ms)`,
    );
  });

  it("uses the field name it is given", () => {
    invalidMessage(() => validateTimeToLive(1, "ttl"), "ttl");
  });
});

describe("validatePage", () => {
  it("defaults page 0 to 1 and page size 0 to 50", () => {
    expect(validatePage(0, 0)).toEqual({ offset: 0, limit: 50 });
    expect(validatePage(1, 0)).toEqual({ offset: 0, limit: 50 });
    expect(validatePage(3, 0)).toEqual({ offset: 100, limit: 50 });
    expect(validatePage(0, 20)).toEqual({ offset: 0, limit: 20 });
  });

  it("turns pages into offsets", () => {
    expect(validatePage(3, 20)).toEqual({ offset: 40, limit: 20 });
    expect(validatePage(1, 1000)).toEqual({ offset: 0, limit: 1000 });
    expect(validatePage(1_000_000, 1000)).toEqual({ offset: 999_999_000, limit: 1000 });
  });

  it("refuses a page size above 1000", () => {
    expect(invalidMessage(() => validatePage(1, 1001), "page_size")).toBe(
      "page_size: must be a whole number from 1 to 1000, or 0 for the default of 50 (got 1001)",
    );
    invalidMessage(() => validatePage(1, -1), "page_size");
    invalidMessage(() => validatePage(1, 2.5), "page_size");
  });

  it("refuses a page beyond 1,000,000", () => {
    expect(invalidMessage(() => validatePage(1_000_001, 10), "page")).toBe(
      "page: must be a whole number from 1 to 1000000, or 0 for the first page (got 1000001)",
    );
    invalidMessage(() => validatePage(-1, 10), "page");
  });
});

describe("checkCrc32", () => {
  const data = new TextEncoder().encode("123456789");
  // The standard CRC-32 (IEEE 802.3) check value.
  const check = 0xcbf43926;

  it("returns the checksum when none was sent", () => {
    expect(checkCrc32(data, undefined)).toBe(check);
    expect(checkCrc32(new Uint8Array(0), undefined)).toBe(0);
  });

  it("accepts a matching checksum", () => {
    expect(checkCrc32(data, check)).toBe(check);
  });

  it("refuses a mismatch and reports the computed checksum", () => {
    expect(invalidMessage(() => checkCrc32(data, (check ^ 1) >>> 0), "data_crc32")).toBe(
      `data_crc32: does not match the CRC-32 of data (computed ${check})`,
    );
    invalidMessage(() => checkCrc32(data, 0), "data_crc32");
  });

  it("refuses values that are not unsigned 32-bit integers", () => {
    for (const value of [-1, 2 ** 32, 1.5, Number.NaN]) {
      expect(invalidMessage(() => checkCrc32(data, value), "data_crc32")).toContain(
        "must be an unsigned 32-bit integer",
      );
    }
  });

  it("uses the field name it is given", () => {
    invalidMessage(
      () => checkCrc32(data, 1, "first_version.data_crc32"),
      "first_version.data_crc32",
    );
  });
});
