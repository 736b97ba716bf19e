import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A server refusal, split so a form can show it next to the field it names.
 * `INVALID_ARGUMENT` carries the field as a google.rpc.BadRequest field
 * violation (`first_version.data.port`, `tags[2]`); ALREADY_EXISTS is about
 * the secret's path and name, so it is put on the name.
 */
export interface Refusal {
  code: Code;
  /** The request field at fault, as the server names it; undefined when the refusal is not about one field. */
  field?: string;
  /** The words to show: for a field, the rule it broke (the field's label goes before it). */
  message: string;
}

/** Reads any error from a call into a {@link Refusal}. */
export function refusalOf(error: unknown): Refusal {
  const err = ConnectError.from(error);
  if (err.code === Code.InvalidArgument) {
    for (const detail of err.findDetails(BadRequestSchema)) {
      const violation = detail.fieldViolations[0];
      if (violation)
        return { code: err.code, field: violation.field, message: violation.description };
    }
  }
  return { code: err.code, message: wordsFor(err) };
}

/** What a refusal not tied to one field means, in words a person can act on. */
function wordsFor(err: ConnectError): string {
  switch (err.code) {
    case Code.Unavailable:
      return "The server cannot be reached. Check your connection, then try again.";
    case Code.Unauthenticated:
      return `Your session is no longer valid (${err.rawMessage}). Sign in again.`;
    case Code.PermissionDenied:
      return `Your token may not do this: ${err.rawMessage}`;
    default:
      return err.rawMessage;
  }
}

/** The label a field's message starts with. */
const LABELS: Record<string, string> = {
  name: "Name",
  path: "Path",
  tags: "Tags",
  description: "Description",
  region: "Region",
  data: "The value",
  "data.username": "Username",
  "data.password": "Password",
  "data.host": "Host",
  "data.port": "Port",
  "data.dbname": "Database name",
  "data.engine": "Engine",
  "data.ssh_private_key": "The SSH private key",
  ephemeral_policy: "The ephemeral policy",
  "ephemeral_policy.time_to_live": "Time to live",
};

/** A field's refusal as a sentence: "Path must start with "/" (got "x")." */
export function sentence(field: string, rule: string): string {
  const base = field.replace(/\[\d+\]$/, "");
  const label = LABELS[field] ?? LABELS[base] ?? field;
  const text = `${label} ${rule}`;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
