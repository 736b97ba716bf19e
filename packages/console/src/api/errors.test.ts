import { create } from "@bufbuild/protobuf";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  CONNECTION_LOST,
  describeError,
  fieldError,
  isConnectionLost,
  retryRead,
} from "./errors.ts";

const badRequest = (field: string, description: string) =>
  new ConnectError(`${field}: ${description}`, Code.InvalidArgument, undefined, [
    {
      desc: BadRequestSchema,
      value: create(BadRequestSchema, { fieldViolations: [{ field, description }] }),
    },
  ]);

describe("describeError", () => {
  it("keeps the server's message for INVALID_ARGUMENT and names the field it carries", () => {
    const p = describeError(
      badRequest("first_version.data.port", "must be a string of digits from 0 to 65535"),
    );
    expect(p.code).toBe(Code.InvalidArgument);
    expect(p.field).toBe("first_version.data.port");
    expect(p.message).toBe("Port must be a string of digits from 0 to 65535.");
    expect(fieldError(p, "port")).toBe("must be a string of digits from 0 to 65535");
    expect(fieldError(p, "first_version.data.port")).toBe(
      "must be a string of digits from 0 to 65535",
    );
    expect(fieldError(p, "name")).toBeUndefined();
  });

  it("reads an item of a list field, and finds the list's form field", () => {
    const p = describeError(badRequest("tags[1]", "must be 1-128 printable characters"));
    expect(p.message).toBe("Tags (item 2) must be 1-128 printable characters.");
    expect(fieldError(p, "tags")).toBe("must be 1-128 printable characters");
  });

  it("names no field when the server attached no violation", () => {
    const p = describeError(new ConnectError("secret is protected", Code.FailedPrecondition));
    expect(p.field).toBeUndefined();
    expect(p.message).toBe("Secret is protected.");
  });

  it("says what a refusal means in plain words", () => {
    expect(describeError(new ConnectError("x", Code.NotFound)).message).toMatch(/^Not found/);
    expect(describeError(new ConnectError("etag mismatch", Code.Aborted)).message).toMatch(
      /changed this meanwhile/,
    );
    expect(describeError(new ConnectError("", Code.Unauthenticated)).message).toMatch(/not valid/);
    expect(describeError(new ConnectError("token revoked", Code.Unauthenticated)).message).toBe(
      "Token revoked.",
    );
  });

  it("says a lost connection is being retried, for Unavailable and a failed fetch", () => {
    const read = { read: true };
    expect(describeError(new ConnectError("down", Code.Unavailable), read).message).toBe(
      CONNECTION_LOST,
    );
    expect(describeError(new ConnectError("down", Code.Unavailable)).message).toMatch(
      /^Connection to the server lost: .*try again/,
    );
    const fetchFailed = new ConnectError(
      "failed",
      Code.Unknown,
      undefined,
      undefined,
      new TypeError("Failed to fetch"),
    );
    expect(describeError(fetchFailed, read).message).toBe(CONNECTION_LOST);
    expect(describeError(new TypeError("Failed to fetch"), read).message).toBe(CONNECTION_LOST);
  });
});

describe("retryRead", () => {
  it("retries a lost connection only", () => {
    expect(isConnectionLost(new ConnectError("down", Code.Unavailable))).toBe(true);
    expect(retryRead(0, new ConnectError("down", Code.Unavailable))).toBe(true);
    expect(retryRead(0, new ConnectError("no", Code.PermissionDenied))).toBe(false);
    expect(retryRead(0, new ConnectError("bad", Code.InvalidArgument))).toBe(false);
    expect(retryRead(30, new ConnectError("down", Code.Unavailable))).toBe(false);
  });
});
