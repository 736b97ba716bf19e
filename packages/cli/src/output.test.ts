import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SecretSchema, SecretType, SecretTypeSchema, VersionStatusSchema } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import {
  clean,
  enumChoices,
  enumName,
  formatDetails,
  formatTable,
  formatTime,
  fullPath,
  jsonText,
  parseEnum,
  parseOutputFormat,
} from "./output.ts";

describe("formatTable", () => {
  it("pads columns to the widest cell, two spaces apart, without trailing blanks", () => {
    expect(
      formatTable(
        ["SECRET", "TYPE", "TAGS"],
        [
          ["/prod/db", "database_credentials", ""],
          ["/a", "opaque", "x,y"],
        ],
      ),
    ).toBe(
      "SECRET    TYPE                  TAGS\n/prod/db  database_credentials\n/a        opaque                x,y\n",
    );
  });

  it("escapes control characters in cells", () => {
    expect(formatTable(["A"], [["x\ny\u001b[2J"]])).toBe("A\nx\\u000ay\\u001b[2J\n");
  });
});

describe("formatDetails", () => {
  it("aligns keys and leaves out empty values", () => {
    expect(
      formatDetails([
        ["secret", "/prod/db"],
        ["description", ""],
        ["deletion requested", "x"],
      ]),
    ).toBe("secret:              /prod/db\ndeletion requested:  x\n");
  });
});

describe("clean", () => {
  it("escapes backslashes so escapes cannot be forged", () => {
    expect(clean("a\\u000ab")).toBe("a\\\\u000ab");
    expect(clean("tab\there")).toBe("tab\\u0009here");
  });
});

describe("enums", () => {
  it("shows values in lower snake case without their prefix", () => {
    expect(enumName(SecretTypeSchema, SecretType.DATABASE_CREDENTIALS)).toBe(
      "database_credentials",
    );
    expect(enumName(VersionStatusSchema, 3)).toBe("scheduled_for_deletion");
    expect(enumChoices(SecretTypeSchema)).toEqual([
      "opaque",
      "certificate",
      "key_value",
      "basic_credentials",
      "database_credentials",
      "ssh_key",
    ]);
  });

  it("reads lower snake, upper snake, kebab and the proto name", () => {
    for (const text of [
      "database_credentials",
      "DATABASE_CREDENTIALS",
      "database-credentials",
      "SECRET_TYPE_DATABASE_CREDENTIALS",
    ]) {
      expect(parseEnum(SecretTypeSchema, text, "--type")).toBe(SecretType.DATABASE_CREDENTIALS);
    }
  });

  it("refuses unknown values and UNSPECIFIED, listing the choices", () => {
    expect(() => parseEnum(SecretTypeSchema, "password", "--type")).toThrow(
      '--type must be one of opaque, certificate, key_value, basic_credentials, database_credentials, ssh_key (got "password")',
    );
    expect(() => parseEnum(SecretTypeSchema, "unspecified", "--type")).toThrow(UsageError);
  });
});

describe("jsonText", () => {
  it("uses the proto JSON mapping with camelCase names and every field", () => {
    const secret = create(SecretSchema, {
      id: "id-1",
      path: "/prod",
      name: "db",
      type: SecretType.KEY_VALUE,
      versionCount: 2,
      createdAt: timestampFromDate(new Date("2030-01-01T00:00:00Z")),
    });
    const json = JSON.parse(jsonText(SecretSchema, secret));
    expect(json).toMatchObject({
      id: "id-1",
      projectId: "",
      type: "SECRET_TYPE_KEY_VALUE",
      versionCount: 2,
      protected: false,
      tags: [],
      createdAt: "2030-01-01T00:00:00Z",
    });
    expect(Object.keys(json)).not.toContain("project_id");
  });
});

describe("small formats", () => {
  it("formats times to the second, UTC", () => {
    expect(formatTime(timestampFromDate(new Date("2030-01-01T10:11:12.345Z")))).toBe(
      "2030-01-01T10:11:12Z",
    );
    expect(formatTime(undefined)).toBe("");
  });

  it("joins folders and names", () => {
    expect(fullPath("/", "db")).toBe("/db");
    expect(fullPath("/prod", "db")).toBe("/prod/db");
  });

  it("checks -o", () => {
    expect(parseOutputFormat(undefined)).toBe("table");
    expect(parseOutputFormat("json")).toBe("json");
    expect(() => parseOutputFormat("yaml")).toThrow('-o must be table or json (got "yaml")');
  });
});
