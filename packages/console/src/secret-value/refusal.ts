import { Code, ConnectError } from "@connectrpc/connect";
import { describeError } from "../api/errors.ts";

/**
 * A server refusal, split so a form can show it next to the field it names
 * (console-core's describeError reads the google.rpc.BadRequest field
 * violation an INVALID_ARGUMENT carries: `first_version.data.port`,
 * `tags[2]`). Forms put the field's own label before the rule.
 */
export interface Refusal {
  code: Code;
  /** The request field at fault, as the server names it; undefined when the refusal is not about one field. */
  field?: string;
  /** For a field, the rule it broke ("must start with ..."); otherwise the whole message, in plain words. */
  message: string;
}

/** Reads any error from a call into a {@link Refusal}. */
export function refusalOf(error: unknown): Refusal {
  const problem = describeError(error);
  if (problem.field !== undefined) {
    return {
      code: problem.code,
      field: problem.field,
      message: problem.violations.get(problem.field) ?? problem.message,
    };
  }
  // ALREADY_EXISTS's own message names the path and name, which says more than "It already exists.".
  const raw = error instanceof ConnectError ? error.rawMessage : "";
  return {
    code: problem.code,
    message: problem.code === Code.AlreadyExists && raw ? capital(raw) : problem.message,
  };
}

function capital(text: string): string {
  const t = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(t) ? t : `${t}.`;
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
  data_crc32: "The value's checksum",
  ephemeral_policy: "The ephemeral policy",
  "ephemeral_policy.time_to_live": "Time to live",
};

/** A field's refusal as a sentence: "Path must start with "/" (got "x")." */
export function sentence(field: string, rule: string): string {
  const base = field.replace(/\[\d+\]$/, "");
  const label = LABELS[field] ?? LABELS[base] ?? field;
  // "Port must be ...", but "The value: PEM block 1 (CERTIFICATE) does not parse."
  const reads = /^(must|is|are|does|has|should|cannot|can)\b/.test(rule);
  const text = reads ? `${label} ${rule}` : `${label}: ${rule}`;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
