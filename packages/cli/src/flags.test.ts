import { RoleSchema, SecretTypeSchema, TokenFormatSchema, VersionStatusSchema } from "@coffer/api";
import { describe, expect, it } from "vitest";
import {
  PAYLOAD_SHAPES,
  ROLE_NAMES,
  SECRET_TYPE_NAMES,
  TOKEN_FORMAT_NAMES,
  VERSION_STATUS_NAMES,
} from "./flags.ts";
import { enumChoices } from "./output.ts";

describe("the names the help lists", () => {
  it("are the API's enum values, in its order, so that a new one shows in --help", () => {
    expect(SECRET_TYPE_NAMES).toEqual(enumChoices(SecretTypeSchema));
    expect(ROLE_NAMES).toEqual(enumChoices(RoleSchema));
    expect(VERSION_STATUS_NAMES).toEqual(enumChoices(VersionStatusSchema));
    expect(TOKEN_FORMAT_NAMES).toEqual(enumChoices(TokenFormatSchema));
  });

  it("show every type's payload shape", () => {
    for (const type of SECRET_TYPE_NAMES) {
      expect(PAYLOAD_SHAPES).toMatch(new RegExp(`^  ${type} `, "m"));
    }
  });
});
