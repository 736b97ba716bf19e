import {
  BadRequestSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "@coffer/api/google/rpc";
import { Code, type ConnectError } from "@connectrpc/connect";

/**
 * Coffer's refusals as the Scaleway Secret Manager API words them: its HTTP
 * status and its JSON error body, whose `type` decides the error class the
 * Scaleway SDKs raise (`not_found` → ResourceNotFoundError, and so on). The
 * one table from Coffer's codes to Scaleway's: every refusal of the REST
 * surface comes through here, already mapped by the call chain's own table
 * (rpc/errors.ts), so a rule refuses alike over gRPC and over REST.
 */
export interface RestError {
  status: number;
  body: Record<string, unknown>;
}

/** What the route knows that the error may not say: what it was about. */
export interface RestErrorContext {
  /** The resource the route addresses (`secret`, `secret_version`). */
  resource: string;
  /** Its id in the route (the secret id; a version's `<secret id>/<revision>`). */
  resourceId: string;
  /** Whether the request carried a token at all (UNAUTHENTICATED's reason). */
  hadToken: boolean;
  /** `read` for reads and accesses, `write` for the rest (PERMISSION_DENIED's action). */
  action: "read" | "write";
  /** Scaleway's names of the method's fields where they differ (`path` is `secret_path`). */
  fields?: Readonly<Record<string, string>> | undefined;
}

const REST_UNAUTHENTICATED =
  "a valid key is required: send X-Auth-Token: <secret key> (or Authorization: Bearer <token>) with a key that is neither revoked nor expired";

export function restError(err: ConnectError, context: RestErrorContext): RestError {
  const message = err.rawMessage;
  switch (err.code) {
    case Code.InvalidArgument:
    case Code.OutOfRange: {
      const violations = err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
      return {
        status: 400,
        body: {
          type: "invalid_arguments",
          message: "invalid argument(s)",
          details:
            violations.length === 0
              ? [{ argument_name: "", reason: "constraint", help_message: message }]
              : violations.map((v) => ({
                  argument_name: context.fields?.[v.field] ?? v.field,
                  reason: reasonOf(v.description),
                  help_message: v.description,
                })),
        },
      };
    }
    case Code.NotFound:
      return {
        status: 404,
        body: {
          type: "not_found",
          message: "resource is not found",
          ...resourceOf(err, context),
          help_message: message,
        },
      };
    case Code.AlreadyExists:
      return {
        status: 409,
        body: {
          type: "already_exists",
          message: "resource already exists",
          ...resourceOf(err, context),
          help_message: message,
        },
      };
    case Code.FailedPrecondition: {
      const [violation] = err.findDetails(PreconditionFailureSchema).flatMap((d) => d.violations);
      return {
        status: 412,
        body: {
          type: "precondition_failed",
          message: "precondition is not respected",
          precondition: violation?.type ?? "unknown_precondition",
          help_message: message,
        },
      };
    }
    case Code.Aborted:
      // A concurrent change won: the resource is busy, retrying is right.
      return {
        status: 409,
        body: {
          type: "transient_state",
          message,
          resource: context.resource,
          resource_id: context.resourceId,
          current_state: "changing",
        },
      };
    case Code.Unauthenticated:
      return {
        status: 401,
        body: {
          type: "denied_authentication",
          // The chain's message tells gRPC clients of `authorization`.
          message: REST_UNAUTHENTICATED,
          method: "api_key",
          // Never says which of unknown, revoked or expired: neither does gRPC.
          reason: context.hadToken ? "not_found" : "invalid_argument",
        },
      };
    case Code.PermissionDenied:
      return {
        status: 403,
        body: {
          type: "permissions_denied",
          message,
          details: [{ resource: context.resource, action: context.action }],
        },
      };
    case Code.ResourceExhausted:
      return exhausted(err, message);
    case Code.DeadlineExceeded:
      return { status: 408, body: { type: "invalid_request_error", message } };
    case Code.Canceled:
      return { status: 499, body: { type: "invalid_request_error", message } };
    case Code.Unavailable:
      return { status: 503, body: { type: "service_unavailable", message } };
    case Code.Unimplemented:
      return { status: 501, body: { type: "not_implemented", message } };
    default:
      return { status: 500, body: { type: "internal_error", message } };
  }
}

/**
 * The resource a refusal is about: the one its google.rpc.ResourceInfo names
 * (the domain's detail), else the one the route addresses. ESO tells "no
 * such secret" by `not_found` with these two fields.
 */
function resourceOf(err: ConnectError, context: RestErrorContext) {
  const [info] = err.findDetails(ResourceInfoSchema);
  return {
    resource: info?.resourceType ?? context.resource,
    resource_id: info?.resourceName ?? context.resourceId,
  };
}

/**
 * RESOURCE_EXHAUSTED is either a quota (a project's secrets, a secret's
 * versions: QuotaFailure) or a rate or capacity limit (RetryInfo, or none).
 */
function exhausted(err: ConnectError, message: string): RestError {
  const [quota] = err.findDetails(QuotaFailureSchema).flatMap((d) => d.violations);
  if (quota !== undefined) {
    const [scope = "", id = ""] = quota.subject.split(":", 2);
    const limit = Number(/^limit (\d+):/.exec(quota.description)?.[1] ?? 0);
    return {
      status: 403,
      body: {
        type: "quotas_exceeded",
        message: "quota(s) exceeded",
        details: [
          {
            resource: scope === "project" ? "secret" : "secret_version",
            quota: limit,
            current: limit,
            ...(scope === "project" ? { project_id: id } : { secret_id: id }),
          },
        ],
        help_message: message,
      },
    };
  }
  const [retry] = err.findDetails(RetryInfoSchema);
  const delayMs = retry?.retryDelay
    ? Number(retry.retryDelay.seconds) * 1000 + retry.retryDelay.nanos / 1e6
    : 1000;
  const resetSeconds = Math.max(1, Math.ceil(delayMs / 1000));
  return {
    status: 429,
    body: {
      type: "too_many_requests",
      message,
      help_message: message,
      ...(retry !== undefined && {
        limit: { quota: Math.max(1, Math.round(1000 / Math.max(delayMs, 1))), window_seconds: 1 },
      }),
      reset_seconds: resetSeconds,
      reset_at: new Date(Date.now() + resetSeconds * 1000).toISOString(),
    },
  };
}

/**
 * Scaleway's reason for a field's refusal, from the wording of Coffer's rules
 * (domain/validation.ts): `required`, `format` (of the wrong kind: "must be
 * a UUID", "must be standard base64") or `constraint` (of the right kind,
 * out of bounds).
 */
function reasonOf(rule: string): "required" | "format" | "constraint" {
  if (/^(is )?required\b/.test(rule)) return "required";
  if (/^must be (a|an|standard|valid)\b/.test(rule)) return "format";
  return "constraint";
}
