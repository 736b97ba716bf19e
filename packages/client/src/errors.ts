import { SecretType } from "@coffer/api";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";

/** A request field the server refused, and the rule it broke. */
export interface FieldViolation {
  /** The field's path in the request, as the proto names it: "first_version.data.port", "grants[1].role". */
  field: string;
  /** The rule, without the field's name: "must be a string of digits from 0 to 65535". */
  description: string;
}

/**
 * The fields an INVALID_ARGUMENT refused, read from the error's
 * google.rpc.BadRequest details (the server sends one per refused field),
 * so that a form or a command line can put each rule next to the input that
 * set it without parsing the message. Empty for any other error, and for a
 * refusal that names no field.
 *
 * @example
 * try { await coffer.rpc.createSecret(req) } catch (err) {
 *   for (const { field, description } of fieldViolations(err)) show(field, description);
 * }
 */
export function fieldViolations(err: unknown): FieldViolation[] {
  if (!(err instanceof ConnectError)) return [];
  return err
    .findDetails(BadRequestSchema)
    .flatMap((d) => d.fieldViolations)
    .map(({ field, description }) => ({ field, description }));
}

/**
 * An access answer whose payload does not match its `data_crc32`: the bytes
 * were corrupted on the way. Code DATA_LOSS. The payload is zeroed and never
 * returned; the message names the secret and revision, never a byte.
 */
export class ChecksumError extends ConnectError {
  /** `instanceof ChecksumError` by prototype (ConnectError's own check is by name). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(ChecksumError, value);
  }

  constructor(
    /** The secret whose payload failed the check. */
    readonly secretId: string,
    /** The revision that was served. */
    readonly revision: number,
    /** The CRC-32 the server announced. */
    readonly expected: number,
    /** The CRC-32 of the bytes received. */
    readonly actual: number,
  ) {
    super(
      `the payload of secret ${secretId} revision ${revision} fails its CRC-32 check ` +
        `(announced ${hex(expected)}, received ${hex(actual)}); it was discarded`,
      Code.DataLoss,
    );
  }
}

/**
 * The version asked for is single-access and the caller did not ask to
 * consume it: reading it would spend it. Code FAILED_PRECONDITION. Pass
 * `consumeSingleAccess: true` to read (and spend) it.
 */
export class SingleAccessError extends ConnectError {
  /** `instanceof SingleAccessError` by prototype (ConnectError's own check is by name). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(SingleAccessError, value);
  }

  constructor(
    /** The secret holding the single-access version. */
    readonly secretId: string,
    /** The single-access revision, still unspent. */
    readonly revision: number,
  ) {
    super(
      `version ${revision} of secret ${secretId} is single-access: reading it consumes it; ` +
        "pass { consumeSingleAccess: true } to read it",
      Code.FailedPrecondition,
    );
  }
}

/**
 * The secret is not of the type the caller expected (the `type` option of an
 * access). Code FAILED_PRECONDITION. Nothing was consumed.
 */
export class SecretTypeError extends ConnectError {
  /** `instanceof SecretTypeError` by prototype (ConnectError's own check is by name). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(SecretTypeError, value);
  }

  constructor(
    /** The secret that was read. */
    readonly secretId: string,
    /** The type the caller asked for. */
    readonly expected: SecretType,
    /** The secret's type. */
    readonly actual: SecretType,
  ) {
    super(
      `secret ${secretId} is ${secretTypeName(actual)}, not ${secretTypeName(expected)}`,
      Code.FailedPrecondition,
    );
  }
}

/**
 * These classes keep ConnectError's `name`, so that `instanceof ConnectError`
 * and `ConnectError.from` (which check the name) still take them as
 * ConnectErrors; their own `instanceof` checks the prototype chain.
 */
/**
 * A JWT exchange of a `jwtTokenProvider` that failed: the JWT could not be
 * read, or the server refused it (UNAUTHENTICATED) or could not be reached
 * (UNAVAILABLE...). The call it stopped fails with it, with a code the
 * caller already handles; the message names the JWT's source and what to
 * check, never the JWT or a token.
 */
export class TokenExchangeError extends ConnectError {
  /** `instanceof TokenExchangeError` by prototype (ConnectError's own check is by name). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(TokenExchangeError, value);
  }
}

function isInstance(cls: { prototype: object }, value: unknown): boolean {
  return value instanceof Object && Object.prototype.isPrototypeOf.call(cls.prototype, value);
}

/** A secret type as the spec writes it: "database_credentials", "opaque"... */
export function secretTypeName(type: SecretType): string {
  return SecretType[type]?.toLowerCase() ?? `type ${type}`;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}
