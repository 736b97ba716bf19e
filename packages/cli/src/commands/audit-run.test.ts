import { describe, expect, it } from "vitest";
import { UsageError } from "../errors.ts";
import { fullMethodName, outcomeName } from "./audit-run.ts";

describe("audit filters", () => {
  it("expands a method name to its full name", () => {
    expect(fullMethodName("AccessSecretVersion")).toBe(
      "coffer.secretmanager.v1.SecretService/AccessSecretVersion",
    );
    expect(fullMethodName("createtoken")).toBe("coffer.admin.v1.AdminService/CreateToken");
    expect(fullMethodName("coffer.secretmanager.v1.SecretService/GetSecret")).toBe(
      "coffer.secretmanager.v1.SecretService/GetSecret",
    );
    expect(fullMethodName("ExchangeToken")).toBe("coffer.auth.v1.AuthService/ExchangeToken");
    expect(() => fullMethodName("Frobnicate")).toThrow(UsageError);
  });

  it("reads outcomes in any case", () => {
    expect(outcomeName("ok")).toBe("OK");
    expect(outcomeName("permission-denied")).toBe("PERMISSION_DENIED");
    expect(() => outcomeName("fine")).toThrow(UsageError);
  });
});
