import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  BadRequestSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import { isDatabaseUnavailable, pgErrorCode, withoutQueryParameters } from "../db/errors.ts";
import { DomainError, type DomainErrorKind } from "../domain/errors.ts";

/** The one table from domain refusals to Connect/gRPC codes. */
const CODE: Record<DomainErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/**
 * Maps anything a handler threw to the error the client sees. Domain errors
 * and Connect errors keep their code and message; a domain error that names
 * its field also carries it as a google.rpc.BadRequest field violation (field
 * path and rule), the standard detail every gRPC ecosystem decodes, so that a
 * client puts the rule next to the right input without parsing the message.
 * What a refusal is about travels likewise (ResourceInfo, PreconditionFailure,
 * QuotaFailure: see refusalDetails). Known database conditions
 * get a code and a generic message; everything else is INTERNAL with only the
 * request id, and `internal` is told so that the cause is logged.
 */
export function toConnectError(
  err: unknown,
  requestId: string,
  internal: (cause: unknown) => void,
): ConnectError {
  if (err instanceof DomainError) {
    return new ConnectError(err.message, CODE[err.kind], undefined, [
      ...fieldViolation(err),
      ...refusalDetails(err),
    ]);
  }
  if (err instanceof ConnectError) return err;
  const pg = pgErrorCode(err);
  if (pg === "23505") {
    return new ConnectError("the resource already exists", Code.AlreadyExists);
  }
  if (pg === "40001" || pg === "40P01") {
    return new ConnectError(
      "the request conflicted with a concurrent change; retry it",
      Code.Aborted,
    );
  }
  if (isDatabaseUnavailable(err) || pg === "57014") {
    return new ConnectError("the database is unavailable; retry with backoff", Code.Unavailable);
  }
  internal(withoutQueryParameters(err));
  return new ConnectError(`internal error (request id ${requestId})`, Code.Internal);
}

function fieldViolation(err: DomainError) {
  if (err.field === undefined) return [];
  const description = err.rule ?? err.message;
  return [
    {
      desc: BadRequestSchema,
      value: { fieldViolations: [{ field: err.field, description }] },
    },
  ];
}

/**
 * A refusal's detail (domain/errors.ts RefusalDetail) as the standard
 * google.rpc details: the missing or refusing resource (ResourceInfo), the
 * broken precondition (PreconditionFailure), the quota reached
 * (QuotaFailure). The Scaleway-compatible REST API reads them back
 * (scaleway/errors.ts).
 */
function refusalDetails(err: DomainError) {
  const { detail } = err;
  if (detail === undefined) return [];
  return [
    ...(detail.resource === undefined
      ? []
      : [
          {
            desc: ResourceInfoSchema,
            value: { resourceType: detail.resource.type, resourceName: detail.resource.id },
          },
        ]),
    ...(detail.precondition === undefined
      ? []
      : [
          {
            desc: PreconditionFailureSchema,
            value: {
              violations: [
                {
                  type: detail.precondition,
                  subject: detail.resource?.id ?? "",
                  description: err.message,
                },
              ],
            },
          },
        ]),
    ...(detail.quota === undefined
      ? []
      : [
          {
            desc: QuotaFailureSchema,
            value: {
              violations: [
                {
                  subject: detail.quota.subject,
                  description: `limit ${detail.quota.limit}: ${err.message}`,
                },
              ],
            },
          },
        ]),
  ];
}

/**
 * A rate limit's refusal (RESOURCE_EXHAUSTED) with when to retry, as the
 * standard google.rpc.RetryInfo: the time one call's share of the rate
 * refills.
 */
export function rateLimited(message: string, ratePerSecond: number): ConnectError {
  const delayMs = Math.max(1, Math.ceil(1000 / Math.max(ratePerSecond, 0.001)));
  return new ConnectError(message, Code.ResourceExhausted, undefined, [
    { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(delayMs) } },
  ]);
}
