import { create } from "@bufbuild/protobuf";
import { GrantSchema, Role } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { UsageError } from "../errors.ts";
import { grantText, parseGrant } from "./token-run.ts";

describe("parseGrant", () => {
  it("reads ROLE[@PROJECT][:/path]", () => {
    expect(parseGrant("secret_access")).toEqual({
      role: Role.SECRET_ACCESS,
      project: undefined,
      pathPrefix: "/",
    });
    expect(parseGrant("read_only:/prod")).toEqual({
      role: Role.READ_ONLY,
      project: undefined,
      pathPrefix: "/prod",
    });
    expect(parseGrant("full_access@demo:/prod/db/")).toEqual({
      role: Role.FULL_ACCESS,
      project: "demo",
      pathPrefix: "/prod/db",
    });
  });

  it("refuses bad roles and paths, naming the forms", () => {
    expect(() => parseGrant("owner")).toThrow(
      'bad --grant "owner": the role must be one of admin, full_access, secret_write, read_only, secret_access',
    );
    expect(() => parseGrant("read_only:prod")).toThrow(UsageError);
    expect(() => parseGrant("read_only@:/prod")).toThrow('nothing after "@"');
  });

  it("shows grants the way they are written", () => {
    expect(grantText(create(GrantSchema, { role: Role.ADMIN }))).toBe("admin@*");
    expect(
      grantText(create(GrantSchema, { role: Role.READ_ONLY, projectId: "p", pathPrefix: "/prod" })),
    ).toBe("read_only@p:/prod");
  });
});
