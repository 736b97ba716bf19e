/**
 * The ways a domain operation can refuse. Each kind maps to exactly one
 * Connect/gRPC code in `rpc/errors.ts`; messages are written for the person who
 * made the request and never carry payloads, tokens, keys, SQL or stack traces.
 */
export type DomainErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable";

export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    /**
     * The request field at fault, for invalid_argument, as a proto field path
     * (`first_version.data.port`, `grants[1].role`).
     */
    readonly field?: string,
    /** What `field` broke, without the field's name ("is required (a string)"). */
    readonly rule?: string,
    /** What the refusal is about, for clients that act on it (see RefusalDetail). */
    readonly detail?: RefusalDetail,
  ) {
    super(message);
  }
}

/**
 * What a refusal is about, beyond its message: `rpc/errors.ts` sends it as
 * the standard google.rpc detail (ResourceInfo, PreconditionFailure,
 * QuotaFailure), and the Scaleway-compatible REST API as its error body's
 * `resource`, `resource_id`, `precondition` and quota fields.
 */
export interface RefusalDetail {
  /**
   * The resource missing (not_found) or refusing: its type (`secret`,
   * `secret_version`, `project`, `token`) and id (a version's is
   * `<secret id>/<revision>`; a secret addressed by path, its path and name).
   */
  resource?: { type: string; id: string };
  /** The precondition broken (failed_precondition), as a word: `protected_resource`. */
  precondition?: string;
  /** The quota reached (resource_exhausted): its subject (`project:<id>`, `secret:<id>`). */
  quota?: { subject: string; limit: number };
}

/**
 * A field broke a rule: the message names the field and the rule, and
 * `rpc/errors.ts` sends both apart too, as a google.rpc.BadRequest detail.
 */
export function invalid(field: string, rule: string): DomainError {
  return new DomainError("invalid_argument", `${field}: ${rule}`, field, rule);
}

/** The constructor of one kind of refusal, whose message is the whole story. */
function refusal(
  kind: Exclude<DomainErrorKind, "invalid_argument">,
): (message: string, detail?: RefusalDetail) => DomainError {
  return (message, detail) => new DomainError(kind, message, undefined, undefined, detail);
}

export const notFound = refusal("not_found");
export const alreadyExists = refusal("already_exists");
export const failedPrecondition = refusal("failed_precondition");
export const aborted = refusal("aborted");
export const unavailable = refusal("unavailable");
export const unauthenticated = refusal("unauthenticated");
export const permissionDenied = refusal("permission_denied");
export const resourceExhausted = refusal("resource_exhausted");
