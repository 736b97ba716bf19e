import type { SecretType } from "@coffer/api";
import type { CallOptions } from "@connectrpc/connect";
import { type AccessAnswer, verifyChecksum } from "./checksum.ts";
import type { CofferClient } from "./client.ts";
import { SecretTypeError, SingleAccessError } from "./errors.ts";
import { type SecretValue, secretValue } from "./secret-value.ts";

/**
 * Which secret to read: `"/prod/db"` (its folder and name, in a project), a
 * secret id (a UUID), or either spelled out as an object.
 */
export type SecretRef = string | { secretId: string } | { path: string; name: string };

/** A revision number, "latest" (the highest) or "latest_enabled" (the highest enabled). */
export type Revision = number | "latest" | "latest_enabled";

/** Options of an access. */
export interface AccessOptions<T extends SecretType = SecretType> {
  /** Defaults to "latest_enabled". */
  revision?: Revision;
  /** The project of a path; defaults to the one given to `createCoffer`. Ignored for ids. */
  projectId?: string;
  /** The region holding the secret; defaults to the client's, then the server's default. */
  region?: string;
  /**
   * The type the caller expects. A secret of another type is refused with
   * {@link SecretTypeError} before anything is consumed, and `.json()` is
   * typed for it.
   */
  type?: T;
  /**
   * Read a single-access version, spending it. Without it (the default), a
   * single-access version is refused with {@link SingleAccessError} and stays
   * unspent.
   */
  consumeSingleAccess?: boolean;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Deadline of each call, in milliseconds; overrides the client's `timeoutMs`. */
  timeoutMs?: number;
}

/** The RPCs {@link accessSecret} needs. */
export type AccessClient = Pick<CofferClient, "accessSecretVersion" | "accessSecretVersionByPath">;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Reads a secret's payload, verified against its CRC-32, as a
 * {@link SecretValue} with `.bytes`, `.text()` and `.json()`.
 *
 * It first asks with `no_consume`, which is safe to retry and, for a
 * version that is not single-access, returns the payload at once. A
 * single-access version answers that it is one, without its payload: it is
 * then refused with {@link SingleAccessError}, unless `consumeSingleAccess` is
 * set, in which case that exact revision is read once more, consuming it, in
 * a call that is never retried.
 *
 * @example
 * const db = await accessSecret(client, "/prod/db", {
 *   projectId,
 *   type: SecretType.DATABASE_CREDENTIALS,
 * });
 * const { host, port, username, password } = db.json();
 */
export async function accessSecret<T extends SecretType = SecretType>(
  client: AccessClient,
  ref: SecretRef,
  options: AccessOptions<T> = {},
): Promise<SecretValue<T>> {
  const target = parseRef(ref);
  const region = options.region ?? "";
  const revision = revisionString(options.revision ?? "latest_enabled");
  const call: CallOptions = {
    ...(options.signal !== undefined && { signal: options.signal }),
    ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
  };
  let answer: AccessAnswer & { type: SecretType; singleAccess: boolean };
  if ("secretId" in target) {
    answer = await client.accessSecretVersion(
      { region, secretId: target.secretId, revision, noConsume: true },
      call,
    );
  } else {
    const projectId = options.projectId;
    if (projectId === undefined || projectId === "") {
      throw new TypeError(
        `reading ${describeRef(ref)} by path needs a projectId (an option of createCoffer or of the call)`,
      );
    }
    answer = await client.accessSecretVersionByPath(
      { region, projectId, path: target.path, name: target.name, revision, noConsume: true },
      call,
    );
  }
  verifyChecksum(answer);
  if (options.type !== undefined && answer.type !== options.type) {
    answer.data.fill(0);
    throw new SecretTypeError(answer.secretId, options.type, answer.type);
  }
  if (answer.singleAccess) {
    if (options.consumeSingleAccess !== true) {
      throw new SingleAccessError(answer.secretId, answer.revision);
    }
    // The revision the probe resolved, not "latest_enabled" again: a version
    // created meanwhile must not be the one spent.
    answer = await client.accessSecretVersion(
      { region, secretId: answer.secretId, revision: String(answer.revision) },
      call,
    );
    verifyChecksum(answer);
  }
  return secretValue({
    secretId: answer.secretId,
    revision: answer.revision,
    type: answer.type as T,
    singleAccess: answer.singleAccess,
    dataCrc32: answer.dataCrc32,
    data: answer.data,
  });
}

/** "/prod/db" as `{ path: "/prod", name: "db" }`; a UUID as `{ secretId }`. */
export function parseRef(ref: SecretRef): { secretId: string } | { path: string; name: string } {
  if (typeof ref !== "string") return ref;
  if (ref.startsWith("/")) {
    const slash = ref.lastIndexOf("/");
    const name = ref.slice(slash + 1);
    if (name === "") {
      throw new TypeError(`${JSON.stringify(ref)} names a folder, not a secret ("/path/name")`);
    }
    return { path: slash === 0 ? "/" : ref.slice(0, slash), name };
  }
  if (UUID.test(ref)) return { secretId: ref };
  throw new TypeError(
    `${JSON.stringify(ref)} is neither a secret's location ("/path/name") nor a secret id (a UUID)`,
  );
}

function describeRef(ref: SecretRef): string {
  if (typeof ref === "string") return ref;
  return "secretId" in ref ? ref.secretId : `${ref.path.replace(/\/$/, "")}/${ref.name}`;
}

function revisionString(revision: Revision): string {
  if (typeof revision === "number") {
    if (!Number.isInteger(revision) || revision < 1) {
      throw new TypeError(`revision must be a positive integer (got ${revision})`);
    }
    return String(revision);
  }
  return revision;
}
