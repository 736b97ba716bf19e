import { SecretType } from "@coffer/api";
import { CliError, ExitCode, UsageError } from "./errors.ts";

/**
 * How `coffer run` turns secrets into environment variables: the names
 * (one rule for secret names, keys and fields), what each payload type
 * becomes, and the refusal of two sources that land on one name. Pure
 * functions over bytes already read; nothing here talks to a server.
 * Messages name secrets, keys and variables, never a value.
 */

/** One secret as read, for the mapping. */
export interface ReadSecret {
  /** Where it came from, as the user would name it: `/prod/db`. */
  label: string;
  /** The secret's name (the last part of its location): `db`. */
  name: string;
  type: SecretType;
  /** The payload, checksum already verified. */
  bytes: Uint8Array;
}

/** One variable and where it came from (for collision messages). */
export interface Variable {
  name: string;
  value: string;
  /** `/prod/db`, or `/prod/db (key "password")`. */
  source: string;
}

/**
 * The variable name for a secret name, key or field: upper-case, every
 * character outside [A-Z0-9_] becomes `_`, and a name that would start
 * with a digit gets a `_` in front (after `prefix`, which is put first as
 * given). `db-password` -> `DB_PASSWORD`, `1st.key` -> `_1ST_KEY`.
 * @throws CliError when nothing is left to name (an empty key).
 */
export function envName(text: string, prefix = ""): string {
  if (text === "") throw new CliError("an empty key cannot name an environment variable");
  const mapped = prefix + text.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
  return /^[0-9]/.test(mapped) ? `_${mapped}` : mapped;
}

/**
 * Checks `--prefix`: it starts the variable names as given, so it must be
 * a name's start itself.
 * @throws UsageError naming the flag and the rule.
 */
export function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(prefix)) {
    throw new UsageError(
      `--prefix must be letters, digits and "_", not starting with a digit (got "${prefix}")`,
    );
  }
  return prefix;
}

/** The fields of the credential types, in the order their variables are listed. */
const FIELDS: Partial<Record<SecretType, readonly string[]>> = {
  [SecretType.BASIC_CREDENTIALS]: ["username", "password"],
  [SecretType.DATABASE_CREDENTIALS]: ["engine", "host", "port", "dbname", "username", "password"],
};

/**
 * The variables one secret becomes:
 *
 * - `opaque` and `certificate`: one variable, named after the secret, whose
 *   value is the payload as UTF-8 text (a binary payload, or one holding a
 *   NUL, cannot be an environment variable and is refused);
 * - `key_value`: one variable per key, named after the key alone (as
 *   Doppler and Infisical name a project's secrets, and as a `.env` file
 *   would); strings as they are, numbers and booleans as JSON writes them;
 * - `basic_credentials` and `database_credentials`: one variable per field,
 *   named after the secret and the field (`db` -> `DB_HOST`, `DB_PASSWORD`);
 * - `ssh_key`: one variable, named after the secret, holding the private
 *   key file's text (not its JSON wrapper).
 */
export function variablesOf(secret: ReadSecret, prefix = ""): Variable[] {
  const one = (value: string): Variable[] => [
    {
      name: envName(secret.name, prefix),
      value: checked(value, secret.label),
      source: secret.label,
    },
  ];
  switch (secret.type) {
    case SecretType.KEY_VALUE: {
      const object = jsonObject(secret);
      return Object.entries(object).map(([key, value]) => {
        const source = `${secret.label} (key ${JSON.stringify(key)})`;
        const text = typeof value === "string" ? value : JSON.stringify(value);
        return { name: envName(key, prefix), value: checked(text, source), source };
      });
    }
    case SecretType.BASIC_CREDENTIALS:
    case SecretType.DATABASE_CREDENTIALS: {
      const object = jsonObject(secret);
      const fields = FIELDS[secret.type] ?? [];
      return fields
        .filter((field) => typeof object[field] === "string")
        .map((field) => {
          const source = `${secret.label} (field ${field})`;
          return {
            name: envName(`${secret.name}_${field}`, prefix),
            value: checked(object[field] as string, source),
            source,
          };
        });
    }
    case SecretType.SSH_KEY: {
      const key = jsonObject(secret).ssh_private_key;
      if (typeof key !== "string") {
        throw new CliError(`${secret.label}: an ssh_key payload without ssh_private_key`);
      }
      return one(key);
    }
    default:
      return one(text(secret));
  }
}

/**
 * All the variables, by name, after checking that no two sources share a
 * name (`db-password` and `DB_PASSWORD` both make DB_PASSWORD).
 * @throws CliError (exit 2) listing every shared name and both sources.
 */
export function mergeVariables(variables: Variable[]): Map<string, Variable> {
  const byName = new Map<string, Variable>();
  const clashes: string[] = [];
  for (const v of variables) {
    const first = byName.get(v.name);
    if (first === undefined) byName.set(v.name, v);
    else clashes.push(`${v.name} comes from ${first.source} and from ${v.source}`);
  }
  if (clashes.length > 0) {
    throw new CliError(
      `two secrets map to the same environment variable: ${clashes.join("; ")}`,
      ExitCode.Usage,
      "rename one of them, or leave one out (--secret names secrets one by one)",
    );
  }
  return byName;
}

function text(secret: ReadSecret): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(secret.bytes);
  } catch {
    throw new CliError(
      `${secret.label} is binary (not UTF-8 text): it cannot be an environment variable`,
      ExitCode.Failure,
      `read it with "coffer version access ${secret.label} --raw" instead`,
    );
  }
}

function jsonObject(secret: ReadSecret): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text(secret));
  } catch (err) {
    if (err instanceof CliError) throw err;
    // JSON.parse's message quotes the payload: never pass it on.
    throw new CliError(`${secret.label}: its payload is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CliError(`${secret.label}: its payload is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** An environment variable cannot hold a NUL: the OS would cut it there. */
function checked(value: string, source: string): string {
  if (value.includes("\0")) {
    throw new CliError(
      `${source} holds a NUL character, which an environment variable cannot hold`,
    );
  }
  return value;
}
