import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  type DomainError,
  failedPrecondition,
  invalid,
  notFound,
  resourceExhausted,
} from "../domain/errors.ts";
import { rateLimited, toConnectError } from "../rpc/errors.ts";
import { type RestErrorContext, restError } from "./errors.ts";

/**
 * Coffer's refusals as Scaleway's error bodies: the `type` picks the class
 * a Scaleway SDK raises, the status is the one api.scaleway.com answers, and
 * the specific fields (resource, resource_id, precondition, details) are
 * where the SDKs read them. Errors are built as the call chain builds them,
 * from domain refusals through rpc/errors.ts.
 */

const SECRET_ID = "6f6e4a56-0000-4000-8000-000000000001";
const context: RestErrorContext = {
  resource: "secret",
  resourceId: SECRET_ID,
  hadToken: true,
  action: "write",
};

const fromDomain = (e: DomainError) =>
  toConnectError(e, "req-1", () => {
    throw new Error("a domain refusal is never internal");
  });

describe("the status and type of every code", () => {
  const cases: [Code, number, string][] = [
    [Code.Canceled, 499, "invalid_request_error"],
    [Code.Unknown, 500, "internal_error"],
    [Code.InvalidArgument, 400, "invalid_arguments"],
    [Code.DeadlineExceeded, 408, "invalid_request_error"],
    [Code.NotFound, 404, "not_found"],
    [Code.AlreadyExists, 409, "already_exists"],
    [Code.PermissionDenied, 403, "permissions_denied"],
    [Code.ResourceExhausted, 429, "too_many_requests"],
    [Code.FailedPrecondition, 412, "precondition_failed"],
    [Code.Aborted, 409, "transient_state"],
    [Code.OutOfRange, 400, "invalid_arguments"],
    [Code.Unimplemented, 501, "not_implemented"],
    [Code.Internal, 500, "internal_error"],
    [Code.Unavailable, 503, "service_unavailable"],
    [Code.DataLoss, 500, "internal_error"],
    [Code.Unauthenticated, 401, "denied_authentication"],
  ];

  it("covers every Connect code", () => {
    const codes = Object.values(Code).filter((c): c is Code => typeof c === "number");
    expect(cases.map(([c]) => c).sort()).toEqual(codes.sort());
  });

  it.each(cases)("code %i -> %i %s, with a message", (code, status, type) => {
    const { status: got, body } = restError(new ConnectError("why it was refused", code), context);
    expect({ status: got, type: body.type }).toEqual({ status, type });
    expect(typeof body.message).toBe("string");
    expect(body.message).not.toBe("");
  });

  it("keeps an internal error's message as the chain wrote it (the request id, no cause)", () => {
    const err = toConnectError(new Error("password=hunter2 in SQL"), "req-42", () => {});
    const { status, body } = restError(err, context);
    expect(status).toBe(500);
    expect(body).toEqual({ type: "internal_error", message: "internal error (request id req-42)" });
  });
});

describe("invalid_arguments", () => {
  it("names the field, the rule and Scaleway's reason", () => {
    const cases: [DomainError, string, string][] = [
      [invalid("name", "is required (1 to 255 characters)"), "name", "required"],
      [invalid("data", "must be standard base64 (A-Z…)"), "data", "format"],
      [invalid("project_id", "must be a UUID"), "project_id", "format"],
      [
        invalid("ephemeral_policy.action", "must be one of delete, disable"),
        "ephemeral_policy.action",
        "constraint",
      ],
      [invalid("tags[2]", "is longer than 64 characters"), "tags[2]", "constraint"],
    ];
    for (const [e, field, reason] of cases) {
      const { status, body } = restError(fromDomain(e), context);
      expect(status).toBe(400);
      expect(body).toEqual({
        type: "invalid_arguments",
        message: "invalid argument(s)",
        details: [{ argument_name: field, reason, help_message: e.rule }],
      });
    }
  });

  it("still has one detail when the error names no field", () => {
    const { body } = restError(new ConnectError("bad", Code.InvalidArgument), context);
    expect(body.details).toEqual([
      { argument_name: "", reason: "constraint", help_message: "bad" },
    ]);
  });
});

describe("not_found", () => {
  it("carries the resource and its id the domain named", () => {
    const e = notFound(`secret_version ${SECRET_ID}/7 not found`, {
      resource: { type: "secret_version", id: `${SECRET_ID}/7` },
    });
    const { status, body } = restError(fromDomain(e), context);
    expect(status).toBe(404);
    expect(body).toEqual({
      type: "not_found",
      message: "resource is not found",
      resource: "secret_version",
      resource_id: `${SECRET_ID}/7`,
      help_message: e.message,
    });
  });

  it("falls back on the route's resource when the error names none", () => {
    const { body } = restError(new ConnectError("gone", Code.NotFound), {
      ...context,
      resource: "secret_version",
      resourceId: `${SECRET_ID}/latest`,
    });
    expect(body).toMatchObject({ resource: "secret_version", resource_id: `${SECRET_ID}/latest` });
  });
});

describe("precondition_failed", () => {
  it("names the precondition, as the cassette's protected secret", () => {
    const e = failedPrecondition("cannot delete a protected secret", {
      resource: { type: "secret", id: SECRET_ID },
      precondition: "protected_resource",
    });
    const { status, body } = restError(fromDomain(e), context);
    expect(status).toBe(412);
    expect(body).toEqual({
      type: "precondition_failed",
      message: "precondition is not respected",
      precondition: "protected_resource",
      help_message: "cannot delete a protected secret",
    });
  });

  it("says unknown_precondition when none is named", () => {
    const { body } = restError(new ConnectError("no", Code.FailedPrecondition), context);
    expect(body.precondition).toBe("unknown_precondition");
  });
});

describe("authentication and permissions", () => {
  it("answers 401 denied_authentication, with invalid_argument when no token came", () => {
    const err = new ConnectError("missing authorization: Bearer <token>", Code.Unauthenticated);
    expect(restError(err, { ...context, hadToken: false })).toEqual({
      status: 401,
      body: {
        type: "denied_authentication",
        // REST's own words: the chain's tell gRPC clients of `authorization`.
        message: expect.stringContaining("X-Auth-Token"),
        method: "api_key",
        reason: "invalid_argument",
      },
    });
    expect(restError(err, context).body.reason).toBe("not_found");
  });

  it("answers 403 permissions_denied naming the resource and the action", () => {
    const err = new ConnectError("the token may not write here", Code.PermissionDenied);
    expect(restError(err, { ...context, action: "read" })).toEqual({
      status: 403,
      body: {
        type: "permissions_denied",
        message: err.rawMessage,
        details: [{ resource: "secret", action: "read" }],
      },
    });
  });
});

describe("resource exhaustion", () => {
  it("answers a project's quota as 403 quotas_exceeded", () => {
    const e = resourceExhausted("the project has 10 secrets, its limit", {
      quota: { subject: "project:p-1", limit: 10 },
    });
    const { status, body } = restError(fromDomain(e), context);
    expect(status).toBe(403);
    expect(body).toEqual({
      type: "quotas_exceeded",
      message: "quota(s) exceeded",
      details: [{ resource: "secret", quota: 10, current: 10, project_id: "p-1" }],
      help_message: e.message,
    });
  });

  it("answers a secret's quota of versions naming the secret", () => {
    const e = resourceExhausted("too many versions", {
      quota: { subject: `secret:${SECRET_ID}`, limit: 1000 },
    });
    const { body } = restError(fromDomain(e), context);
    expect(body.details).toEqual([
      { resource: "secret_version", quota: 1000, current: 1000, secret_id: SECRET_ID },
    ]);
  });

  it("answers a rate limit as 429 too_many_requests with when to retry", () => {
    const before = Date.now();
    const { status, body } = restError(rateLimited("slow down", 2), context);
    expect(status).toBe(429);
    expect(body).toMatchObject({
      type: "too_many_requests",
      message: "slow down",
      help_message: "slow down",
      limit: { quota: 2, window_seconds: 1 },
      reset_seconds: 1,
    });
    const reset = Date.parse(String(body.reset_at));
    expect(reset).toBeGreaterThanOrEqual(before + 1000 - 5);
    expect(reset).toBeLessThan(before + 5000);
  });

  it("answers a limit without RetryInfo as 429 without `limit`, retrying in a second", () => {
    const { status, body } = restError(new ConnectError("busy", Code.ResourceExhausted), context);
    expect(status).toBe(429);
    expect(body).not.toHaveProperty("limit");
    expect(body.reset_seconds).toBe(1);
  });
});

describe("conflicts", () => {
  it("answers ALREADY_EXISTS as 409 already_exists on the route's resource", () => {
    expect(restError(new ConnectError("taken", Code.AlreadyExists), context)).toEqual({
      status: 409,
      body: {
        type: "already_exists",
        message: "resource already exists",
        resource: "secret",
        resource_id: SECRET_ID,
        help_message: "taken",
      },
    });
  });

  it("answers ABORTED as 409 transient_state, worth a retry", () => {
    expect(restError(new ConnectError("retry it", Code.Aborted), context)).toEqual({
      status: 409,
      body: {
        type: "transient_state",
        message: "retry it",
        resource: "secret",
        resource_id: SECRET_ID,
        current_state: "changing",
      },
    });
  });
});
