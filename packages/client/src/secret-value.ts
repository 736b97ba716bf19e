import { SecretType } from "@coffer/api";
import { secretTypeName } from "./errors.ts";

/** The payload of a `key_value` secret: a flat JSON object. */
export type KeyValuePayload = Record<string, string | number | boolean>;

/** The payload of a `basic_credentials` secret. */
export interface BasicCredentialsPayload {
  username: string;
  password: string;
}

/** The payload of a `database_credentials` secret; `port` is a string of digits (0-65535). */
export interface DatabaseCredentialsPayload {
  engine: "postgres" | "mysql" | "other";
  username: string;
  password: string;
  host: string;
  dbname: string;
  port: string;
}

/** The payload of an `ssh_key` secret: a PEM or OpenSSH private key. */
export interface SshKeyPayload {
  ssh_private_key: string;
}

/**
 * What `.json()` returns for each secret type. The server validates every
 * version against its secret's type on write, so these shapes hold. An
 * opaque payload is whatever JSON it holds (`unknown`); a certificate is PEM
 * text, not JSON, and its `.json()` throws.
 */
export interface SecretJsonByType {
  [SecretType.UNSPECIFIED]: unknown;
  [SecretType.OPAQUE]: unknown;
  [SecretType.CERTIFICATE]: never;
  [SecretType.KEY_VALUE]: KeyValuePayload;
  [SecretType.BASIC_CREDENTIALS]: BasicCredentialsPayload;
  [SecretType.DATABASE_CREDENTIALS]: DatabaseCredentialsPayload;
  [SecretType.SSH_KEY]: SshKeyPayload;
}

/** One accessed version of a secret of type `T`. */
export interface SecretValueOf<T extends SecretType> {
  /** The secret's id. */
  readonly secretId: string;
  /** The revision that was served ("latest_enabled" and "latest" resolved). */
  readonly revision: number;
  /** The secret's type; compare it to narrow a {@link SecretValue} union. */
  readonly type: T;
  /** True when the version was single-access, and this access consumed it. */
  readonly singleAccess: boolean;
  /** CRC-32 (IEEE) of `bytes`, already verified. */
  readonly dataCrc32: number;
  /** The raw payload. */
  readonly bytes: Uint8Array;
  /** The payload as UTF-8 text; throws if it is not valid UTF-8. */
  text(): string;
  /**
   * The payload parsed as JSON, typed by the secret's type (see
   * {@link SecretJsonByType}). Throws, without quoting the payload, if it is
   * not JSON, and always for a certificate.
   */
  json(): SecretJsonByType[T];
  /** Overwrites `bytes` with zeros, once the caller is done with the secret. */
  wipe(): void;
}

/**
 * An accessed secret version. Without a type parameter it is a union over
 * every secret type, narrowed by `type`:
 *
 * @example
 * const value = await coffer.access("/prod/db");
 * if (value.type === SecretType.DATABASE_CREDENTIALS) connect(value.json().host);
 */
export type SecretValue<T extends SecretType = SecretType> = T extends SecretType
  ? SecretValueOf<T>
  : never;

/** Builds the value the access helpers return (the checksum is already verified). */
export function secretValue<T extends SecretType>(answer: {
  secretId: string;
  revision: number;
  type: T;
  singleAccess: boolean;
  dataCrc32: number;
  data: Uint8Array;
}): SecretValue<T> {
  const { secretId, revision, type, singleAccess, dataCrc32, data } = answer;
  const what = `the payload of secret ${secretId} revision ${revision}`;
  const text = () => {
    try {
      // fatal: a replacement character would silently change a credential.
      return new TextDecoder("utf-8", { fatal: true }).decode(data);
    } catch {
      throw new Error(`${what} is not UTF-8 text; read .bytes instead`);
    }
  };
  const value: SecretValueOf<T> = {
    secretId,
    revision,
    type,
    singleAccess,
    dataCrc32,
    bytes: data,
    text,
    json() {
      if (type === SecretType.CERTIFICATE) {
        throw new Error(`${what} is a certificate (PEM text), not JSON; use .text()`);
      }
      const source = text();
      try {
        return JSON.parse(source);
      } catch {
        // JSON.parse's own message quotes the input: never pass it on.
        throw new Error(`${what} (${secretTypeName(type)}) is not valid JSON`);
      }
    },
    wipe() {
      data.fill(0);
    },
  };
  return value as SecretValue<T>;
}
