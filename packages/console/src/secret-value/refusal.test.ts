import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { refusalOf, sentence } from "./refusal.ts";

describe("refusalOf", () => {
  it("splits an INVALID_ARGUMENT into the field it names and the rule", () => {
    const err = new ConnectError(
      'path: must start with "/" (got "x")',
      Code.InvalidArgument,
      undefined,
      [
        {
          desc: BadRequestSchema,
          value: {
            fieldViolations: [{ field: "path", description: 'must start with "/" (got "x")' }],
          },
        },
      ],
    );
    expect(refusalOf(err)).toEqual({
      code: Code.InvalidArgument,
      field: "path",
      message: 'must start with "/" (got "x")',
    });
  });

  it("keeps ALREADY_EXISTS's own words, which name the path and name", () => {
    const err = new ConnectError(
      'a secret named "db" already exists at path "/prod"',
      Code.AlreadyExists,
    );
    expect(refusalOf(err)).toEqual({
      code: Code.AlreadyExists,
      message: 'A secret named "db" already exists at path "/prod".',
    });
  });
});

describe("sentence", () => {
  it("puts the field's label before its rule", () => {
    expect(sentence("path", 'must start with "/" (got "x")')).toBe(
      'Path must start with "/" (got "x").',
    );
    expect(sentence("data.port", "must be a string of digits from 0 to 65535")).toBe(
      "Port must be a string of digits from 0 to 65535.",
    );
    expect(sentence("tags[2]", "must be 1-128 printable characters")).toBe(
      "Tags must be 1-128 printable characters.",
    );
    expect(sentence("data", "PEM block 1 (CERTIFICATE) does not parse")).toBe(
      "The value: PEM block 1 (CERTIFICATE) does not parse.",
    );
  });
});
