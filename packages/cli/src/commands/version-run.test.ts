import { describe, expect, it } from "vitest";
import { CliError } from "../errors.ts";
import { fieldOf, isUtf8Text } from "./version-run.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("fieldOf (version access --field)", () => {
  it("returns one field of a JSON object", () => {
    expect(fieldOf(bytes('{"password": "s3cret", "port": 5432}'), "password")).toBe("s3cret");
    expect(fieldOf(bytes('{"password": "s3cret", "port": 5432}'), "port")).toBe(5432);
  });

  it("answers exit 3 for a missing field and 1 for a payload that is not an object, never quoting it", () => {
    const missing = (() => {
      try {
        fieldOf(bytes('{"password": "s3cret"}'), "user");
      } catch (err) {
        return err as CliError;
      }
    })();
    expect(missing?.exitCode).toBe(3);
    expect(missing?.message).toBe('the payload has no field "user"');
    for (const payload of ["s3cret", "[1]", "\u00ff\u00fe"]) {
      try {
        fieldOf(bytes(payload), "x");
        throw new Error("expected a refusal");
      } catch (err) {
        expect(err).toBeInstanceOf(CliError);
        expect((err as CliError).exitCode).toBe(1);
        expect((err as CliError).message).not.toContain(payload);
      }
    }
  });
});

describe("isUtf8Text", () => {
  it("tells text from binary", () => {
    expect(isUtf8Text(bytes("héllo\n\tworld\r\n"))).toBe(true);
    expect(isUtf8Text(new Uint8Array([0xff, 0xfe, 0x00]))).toBe(false);
    expect(isUtf8Text(bytes("a\u0000b"))).toBe(false);
    expect(isUtf8Text(bytes("\u001b[2J"))).toBe(false);
  });
});
