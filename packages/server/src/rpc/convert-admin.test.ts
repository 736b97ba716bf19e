import { Role, TokenFormat } from "@coffer/api";
import { describe, expect, it } from "vitest";
import { DomainError } from "../domain/errors.ts";
import {
  auditEventToProto,
  roleFromProto,
  roleToProto,
  tokenFormatFromProto,
  tokenToProto,
} from "./convert-admin.ts";

describe("admin conversions", () => {
  it("map every role both ways, UNSPECIFIED to the empty string", () => {
    for (const role of [
      Role.ADMIN,
      Role.FULL_ACCESS,
      Role.SECRET_WRITE,
      Role.READ_ONLY,
      Role.SECRET_ACCESS,
    ]) {
      const name = roleFromProto(role, "r");
      expect(name).not.toBe("");
      expect(roleToProto(name)).toBe(role);
    }
    expect(roleFromProto(Role.UNSPECIFIED, "r")).toBe("");
    expect(roleFromProto(Role.SECRET_ACCESS, "r")).toBe("secret_access");
  });

  it("refuse an unknown role number, naming the field", () => {
    expect(() => roleFromProto(9 as Role, "grants[2].role")).toThrow(
      new DomainError(
        "invalid_argument",
        "grants[2].role: unknown role 9",
        "grants[2].role",
        "unknown role 9",
      ),
    );
  });

  it("read an unspecified token format as Coffer's own, and refuse an unknown one by field", () => {
    expect(tokenFormatFromProto(TokenFormat.UNSPECIFIED, "format")).toBe("coffer");
    expect(tokenFormatFromProto(TokenFormat.COFFER, "format")).toBe("coffer");
    expect(tokenFormatFromProto(TokenFormat.SCALEWAY, "format")).toBe("scaleway");
    expect(() => tokenFormatFromProto(7 as TokenFormat, "format")).toThrow(
      "format: unknown token format 7",
    );
  });

  it("encode a token without expiry or revocation as unset times", () => {
    const t = tokenToProto({
      id: "t",
      name: "n",
      prefix: "coffer_abcd",
      grants: [{ projectId: "", role: "admin", pathPrefix: "/" }],
      createdAt: new Date(0),
      expiresAt: null,
      revokedAt: null,
      createdBy: null,
      accessKey: null,
      bindingId: null,
      issuer: null,
      subject: null,
    });
    expect(t.createdBy).toBe("");
    expect([t.bindingId, t.issuer, t.subject]).toEqual(["", "", ""]);
    expect(t.accessKey).toBe("");
    expect(t.expiresAt).toBeUndefined();
    expect(t.revokedAt).toBeUndefined();
    expect(t.grants).toEqual([{ projectId: "", role: Role.ADMIN, pathPrefix: "/" }]);
  });

  it("encode an event's missing facts as empty values", () => {
    const e = auditEventToProto({
      id: "e",
      time: new Date(0),
      tokenId: null,
      projectId: null,
      method: "m",
      secretId: null,
      secretPath: null,
      secretName: null,
      revision: null,
      outcome: "UNAUTHENTICATED",
      requestId: "r",
      peer: null,
      region: "fr-par",
      count: 1,
      tokenPrefix: null,
      targetTokenId: null,
      issuer: null,
      subject: null,
      bindingId: null,
      reason: null,
    });
    expect(e).toMatchObject({
      tokenId: "",
      projectId: "",
      secretId: "",
      revision: 0,
      peer: "",
      region: "fr-par",
      count: 1,
      tokenPrefix: "",
      targetTokenId: "",
      issuer: "",
      subject: "",
      bindingId: "",
      reason: "",
    });
  });

  it("carry an exchange's issuer, subject, binding and reason into the event", () => {
    const e = auditEventToProto({
      id: "e",
      time: new Date(0),
      tokenId: null,
      projectId: null,
      method: "coffer.auth.v1.AuthService/ExchangeToken",
      secretId: null,
      secretPath: null,
      secretName: null,
      revision: null,
      outcome: "UNAUTHENTICATED",
      requestId: "r",
      peer: null,
      region: "local",
      count: 1,
      tokenPrefix: null,
      targetTokenId: null,
      issuer: "https://issuer.example",
      subject: "system:serviceaccount:prod:api",
      bindingId: "b",
      reason: "expired",
    });
    expect(e).toMatchObject({
      issuer: "https://issuer.example",
      subject: "system:serviceaccount:prod:api",
      bindingId: "b",
      reason: "expired",
    });
  });
});
