import {
  BadRequestSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  DomainError,
  type DomainErrorKind,
  failedPrecondition,
  invalid,
  notFound,
  resourceExhausted,
} from "../domain/errors.ts";
import { rateLimited, toConnectError } from "./errors.ts";

const pgError = (code: string, message = "duplicate key value violates unique constraint") =>
  Object.assign(new Error(message), { code });

/** Drizzle wraps driver errors: the SQLSTATE sits in `cause`. */
const wrapped = (cause: Error) =>
  new Error('Failed query: insert into "secrets" ... params: S3CR3T', { cause });

function map(err: unknown) {
  const internal: unknown[] = [];
  const e = toConnectError(err, "req-1", (cause) => internal.push(cause));
  return { code: e.code, message: e.rawMessage, logged: internal.length };
}

describe("toConnectError", () => {
  it("sends what a refusal is about as the standard google.rpc details", () => {
    const missing = toConnectError(
      notFound("secret s1 not found", { resource: { type: "secret", id: "s1" } }),
      "req-1",
      () => {},
    );
    expect(
      missing.findDetails(ResourceInfoSchema).map((d) => [d.resourceType, d.resourceName]),
    ).toEqual([["secret", "s1"]]);

    const protectedDelete = toConnectError(
      failedPrecondition("secret is protected", {
        precondition: "protected_resource",
        resource: { type: "secret", id: "s1" },
      }),
      "req-1",
      () => {},
    );
    expect(
      protectedDelete
        .findDetails(PreconditionFailureSchema)
        .flatMap((d) => d.violations.map((v) => [v.type, v.subject])),
    ).toEqual([["protected_resource", "s1"]]);

    const quota = toConnectError(
      resourceExhausted("too many", { quota: { subject: "project:p1", limit: 10 } }),
      "req-1",
      () => {},
    );
    expect(
      quota.findDetails(QuotaFailureSchema).flatMap((d) => d.violations.map((v) => v.subject)),
    ).toEqual(["project:p1"]);
    // A refusal without a detail carries none.
    expect(toConnectError(notFound("gone"), "req-1", () => {}).details).toEqual([]);
  });

  it("says when to retry a rate limit, as google.rpc.RetryInfo", () => {
    const e = rateLimited("slow down", 4);
    expect(e.code).toBe(Code.ResourceExhausted);
    const [retry] = e.findDetails(RetryInfoSchema);
    expect(retry?.retryDelay).toMatchObject({ seconds: 0n, nanos: 250_000_000 });
  });

  it.each<[DomainErrorKind, Code]>([
    ["invalid_argument", Code.InvalidArgument],
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["failed_precondition", Code.FailedPrecondition],
    ["aborted", Code.Aborted],
    ["unauthenticated", Code.Unauthenticated],
    ["permission_denied", Code.PermissionDenied],
    ["resource_exhausted", Code.ResourceExhausted],
    ["unavailable", Code.Unavailable],
  ])("maps the domain kind %s to %s with its message", (kind, code) => {
    expect(map(new DomainError(kind, "the message"))).toEqual({
      code,
      message: "the message",
      logged: 0,
    });
  });

  it("sends a refused field and its rule as a google.rpc.BadRequest field violation", () => {
    const e = toConnectError(invalid("grants[1].role", "is required"), "req-1", () => {});
    expect(e.rawMessage).toBe("grants[1].role: is required");
    expect(
      e
        .findDetails(BadRequestSchema)
        .map((d) => d.fieldViolations.map(({ field, description }) => ({ field, description }))),
    ).toEqual([[{ field: "grants[1].role", description: "is required" }]]);
    // A refusal that names no field carries no violation.
    const none = toConnectError(new DomainError("not_found", "gone"), "req-1", () => {});
    expect(none.findDetails(BadRequestSchema)).toEqual([]);
  });

  it("keeps a ConnectError as it is", () => {
    expect(map(new ConnectError("too big", Code.ResourceExhausted))).toMatchObject({
      code: Code.ResourceExhausted,
      message: "too big",
    });
  });

  it("maps Postgres conditions, however deeply wrapped, without their text", () => {
    const dup = map(wrapped(pgError("23505")));
    expect(dup.code).toBe(Code.AlreadyExists);
    expect(dup.message).not.toMatch(/S3CR3T|insert|constraint/);
    expect(map(wrapped(pgError("40001"))).code).toBe(Code.Aborted);
    expect(map(wrapped(pgError("40P01"))).code).toBe(Code.Aborted);
    expect(map(wrapped(pgError("57P01", "terminating connection"))).code).toBe(Code.Unavailable);
    expect(map(wrapped(pgError("08006", "connection failure"))).code).toBe(Code.Unavailable);
    expect(
      map(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })).code,
    ).toBe(Code.Unavailable);
    expect(
      map(Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" })).code,
    ).toBe(Code.Unavailable);
  });

  it("turns anything else into INTERNAL with the request id only, and reports the cause", () => {
    const r = map(wrapped(new TypeError("cannot read x of undefined: S3CR3T")));
    expect(r).toEqual({
      code: Code.Internal,
      message: "internal error (request id req-1)",
      logged: 1,
    });
    expect(map(pgError("22P02", "invalid input syntax: S3CR3T")).code).toBe(Code.Internal);
  });
});
