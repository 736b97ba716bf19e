import { SecretType } from "@coffer/api";

/**
 * A secret's value as the console edits it, per type, and the payload bytes
 * it becomes. The server's rules (packages/server/src/domain/payload-types.ts)
 * are mirrored here so a person sees a mistake as they type; the server stays
 * the authority, and its refusals are shown next to the same fields.
 *
 * Field names in `FieldErrors` are the server's, relative to the payload:
 * `data`, `data.username`, `data.port`... so a refusal from the server
 * (`first_version.data.port`, `data.port`) lands on the same input.
 *
 * Invariant: no message built here quotes a value the person typed in a
 * secret field (a password, a key): keys of key/value rows are structure,
 * and may be named.
 */

/** Largest payload, in bytes (64 KiB), as the server enforces it. */
export const MAX_PAYLOAD_BYTES = 65_536;

/** The six secret types, by the name the server's messages use. */
export type ValueKind =
  | "opaque"
  | "certificate"
  | "key_value"
  | "basic_credentials"
  | "database_credentials"
  | "ssh_key";

/** Every type, in the order the spec lists them (and the form offers them). */
export const VALUE_KINDS: readonly ValueKind[] = [
  "opaque",
  "certificate",
  "key_value",
  "basic_credentials",
  "database_credentials",
  "ssh_key",
];

/** What a person reads for each type. */
export const KIND_LABELS: Record<ValueKind, string> = {
  opaque: "Opaque",
  certificate: "Certificate",
  key_value: "Key/value",
  basic_credentials: "Basic credentials",
  database_credentials: "Database credentials",
  ssh_key: "SSH key",
};

/** One line on what each type holds, shown under its choice. */
export const KIND_HINTS: Record<ValueKind, string> = {
  opaque: "Any text or bytes, stored as they are.",
  certificate: "One or more PEM blocks: certificates, keys, chains.",
  key_value: "Pairs of keys and values, stored as a flat JSON object.",
  basic_credentials: "A username and a password.",
  database_credentials: "Engine, host, port, database name, username and password.",
  ssh_key: "An SSH private key, in PEM or OpenSSH format.",
};

const TYPE_OF_KIND: Record<ValueKind, SecretType> = {
  opaque: SecretType.OPAQUE,
  certificate: SecretType.CERTIFICATE,
  key_value: SecretType.KEY_VALUE,
  basic_credentials: SecretType.BASIC_CREDENTIALS,
  database_credentials: SecretType.DATABASE_CREDENTIALS,
  ssh_key: SecretType.SSH_KEY,
};

/** The API's enum value for a type. */
export function secretTypeOf(kind: ValueKind): SecretType {
  return TYPE_OF_KIND[kind];
}

/** The type a secret holds (UNSPECIFIED, as on creation, means opaque). */
export function kindOfSecretType(type: SecretType): ValueKind {
  for (const kind of VALUE_KINDS) if (TYPE_OF_KIND[kind] === type) return kind;
  return "opaque";
}

/** The engines a database credential may name. */
export const DATABASE_ENGINES = ["postgres", "mysql", "other"] as const;
export type DatabaseEngine = (typeof DATABASE_ENGINES)[number];

/** One row of a key/value secret. `kind` keeps a number or boolean read from a file a number or boolean. */
export interface KeyValueRow {
  /** Stable identity for React and for errors (`rows.<id>.key`); never sent. */
  id: string;
  key: string;
  value: string;
  kind: "string" | "number" | "boolean";
}

/** A value being edited, one shape per type. */
export type ValueDraft =
  | { kind: "opaque"; text: string; file?: { name: string; bytes: Uint8Array } }
  | { kind: "certificate"; pem: string }
  | { kind: "key_value"; rows: KeyValueRow[] }
  | { kind: "basic_credentials"; username: string; password: string }
  | {
      kind: "database_credentials";
      engine: DatabaseEngine;
      host: string;
      port: string;
      dbname: string;
      username: string;
      password: string;
    }
  | { kind: "ssh_key"; sshPrivateKey: string };

/** Messages keyed by field (`data`, `data.port`, `rows.<id>.key`...). */
export type FieldErrors = Record<string, string>;

let rowCounter = 0;
/** A fresh key/value row. */
export function newRow(key = "", value = "", kind: KeyValueRow["kind"] = "string"): KeyValueRow {
  rowCounter += 1;
  return { id: `r${rowCounter}`, key, value, kind };
}

/** The empty value of a type: what the form shows first. */
export function emptyDraft(kind: ValueKind): ValueDraft {
  switch (kind) {
    case "opaque":
      return { kind, text: "" };
    case "certificate":
      return { kind, pem: "" };
    case "key_value":
      return { kind, rows: [newRow()] };
    case "basic_credentials":
      return { kind, username: "", password: "" };
    case "database_credentials":
      return {
        kind,
        engine: "postgres",
        host: "",
        port: "5432",
        dbname: "",
        username: "",
        password: "",
      };
    case "ssh_key":
      return { kind, sshPrivateKey: "" };
  }
}

const utf8 = new TextEncoder();

/** "65,537": byte counts read better grouped. */
export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

/** The rule a payload of `size` bytes breaks, or undefined when its size is allowed. */
export function payloadSizeProblem(size: number): string | undefined {
  if (size < 1) return "The value is empty; a secret value needs 1 to 65,536 bytes.";
  if (size > MAX_PAYLOAD_BYTES) {
    return `The value is ${formatCount(size)} bytes; the maximum is 64 KiB (65,536 bytes).`;
  }
  return undefined;
}

/**
 * The rule a chosen file breaks by its size alone, or undefined. Checked from
 * `File.size` before a byte of it is read or sent.
 */
export function fileSizeProblem(size: number): string | undefined {
  if (size === 0) return "This file is empty; a secret value needs 1 to 65,536 bytes.";
  if (size > MAX_PAYLOAD_BYTES) {
    return `This file is ${formatCount(size)} bytes; the maximum is 64 KiB (65,536 bytes).`;
  }
  return undefined;
}

/** What a form says when "Import from a file" is chosen and no file was read. */
export const NO_FILE = "Choose a file to import (at most 64 KiB, 65,536 bytes).";

/** The result of encoding a draft: the payload when it passes every check, and the checks it failed. */
export interface Encoded {
  bytes?: Uint8Array;
  errors: FieldErrors;
}

/**
 * Turns a draft into the payload the server stores, checking it as the server
 * will. `bytes` is set only when `errors` is empty.
 */
export function encodeDraft(draft: ValueDraft): Encoded {
  const errors: FieldErrors = {};
  let bytes: Uint8Array;
  switch (draft.kind) {
    case "opaque":
      bytes = draft.file ? draft.file.bytes : utf8.encode(draft.text);
      break;
    case "certificate": {
      const problem = certificateProblem(draft.pem);
      if (problem) errors.data = problem;
      bytes = utf8.encode(draft.pem);
      break;
    }
    case "key_value": {
      const object = keyValueObject(draft.rows, errors);
      bytes = utf8.encode(JSON.stringify(object));
      break;
    }
    case "basic_credentials":
      bytes = utf8.encode(JSON.stringify({ username: draft.username, password: draft.password }));
      break;
    case "database_credentials": {
      if (!(DATABASE_ENGINES as readonly string[]).includes(draft.engine)) {
        errors["data.engine"] = "Choose an engine: postgres, mysql or other.";
      }
      const port = portProblem(draft.port);
      if (port) errors["data.port"] = port;
      bytes = utf8.encode(
        JSON.stringify({
          engine: draft.engine,
          username: draft.username,
          password: draft.password,
          host: draft.host,
          dbname: draft.dbname,
          port: draft.port,
        }),
      );
      break;
    }
    case "ssh_key": {
      const problem = sshKeyProblem(draft.sshPrivateKey);
      if (problem) errors["data.ssh_private_key"] = problem;
      bytes = utf8.encode(JSON.stringify({ ssh_private_key: draft.sshPrivateKey }));
      break;
    }
  }
  if (Object.keys(errors).length === 0) {
    const size = payloadSizeProblem(bytes.byteLength);
    if (size) errors.data = size;
  }
  return Object.keys(errors).length === 0 ? { bytes, errors } : { errors };
}

/** The port rule of database credentials: digits, 0 to 65535. */
export function portProblem(port: string): string | undefined {
  if (!/^[0-9]+$/.test(port) || Number(port) > 65_535) {
    return "The port must be a number from 0 to 65535 (digits only).";
  }
  return undefined;
}

function keyValueObject(rows: readonly KeyValueRow[], errors: FieldErrors) {
  const object: Record<string, string | number | boolean> = {};
  const seen = new Set<string>();
  for (const row of rows) {
    // A row left blank (the one the form adds for typing) is not an entry.
    if (row.key === "" && row.value === "") continue;
    if (row.key === "") {
      errors[`rows.${row.id}.key`] = "Enter a key for this value.";
      continue;
    }
    if (seen.has(row.key)) {
      errors[`rows.${row.id}.key`] =
        `The key "${row.key}" is already used above; each key may appear once.`;
      continue;
    }
    seen.add(row.key);
    object[row.key] = typedValue(row);
  }
  return object;
}

/** A row's value as JSON: a number or boolean stays one while its text still reads as one. */
function typedValue(row: KeyValueRow): string | number | boolean {
  if (row.kind === "number" && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(row.value)) {
    const n = Number(row.value);
    if (Number.isFinite(n)) return n;
  }
  if (row.kind === "boolean" && (row.value === "true" || row.value === "false")) {
    return row.value === "true";
  }
  return row.value;
}

const PEM_BLOCK = /-----BEGIN ([^\r\n-][^\r\n]*?)-----[\s\S]*?-----END \1-----/g;

/** The PEM blocks' labels in a text, or a rule it breaks (only PEM blocks and whitespace). */
export function pemLabels(text: string): string[] | { problem: string } {
  const labels: string[] = [];
  let between = "";
  let end = 0;
  for (const match of text.matchAll(PEM_BLOCK)) {
    labels.push(match[1] ?? "");
    between += text.slice(end, match.index);
    end = match.index + match[0].length;
  }
  between += text.slice(end);
  if (between.trim() !== "") {
    return labels.length === 0 && !text.includes("-----BEGIN ")
      ? { problem: 'Paste PEM text: blocks that start with "-----BEGIN ...-----".' }
      : {
          problem:
            "The text must hold only PEM blocks and whitespace; check that each BEGIN line has its END line.",
        };
  }
  return labels;
}

/** The certificate rule: one or more PEM blocks. The server also parses each one. */
export function certificateProblem(pem: string): string | undefined {
  if (pem.trim() === "") {
    return 'Paste one or more PEM blocks ("-----BEGIN CERTIFICATE-----" ...).';
  }
  const labels = pemLabels(pem);
  return Array.isArray(labels) ? undefined : labels.problem;
}

/** The SSH key rule: exactly one private key, PEM or OpenSSH. */
export function sshKeyProblem(key: string): string | undefined {
  if (key.trim() === "") return "Paste a private key (PEM or OpenSSH).";
  const labels = pemLabels(key);
  if (!Array.isArray(labels)) return labels.problem;
  if (labels.length !== 1) {
    return `Paste exactly one private key (this text holds ${labels.length} PEM blocks).`;
  }
  if (!(labels[0] ?? "").endsWith("PRIVATE KEY")) {
    return 'This is not a private key: its block must be "OPENSSH PRIVATE KEY" or "... PRIVATE KEY".';
  }
  return undefined;
}

/** The result of reading a file (or stored bytes) into a type's form. */
export type Decoded = { draft: ValueDraft } | { problem: string };

/**
 * Reads a file's bytes into the form of a type, so the person sees (and can
 * correct) what the file holds before it is stored. Structured types read
 * JSON; key/value also reads a .env file; certificate and SSH key read PEM
 * text; opaque keeps the bytes exactly.
 */
export function decodeFile(
  kind: ValueKind,
  bytes: Uint8Array,
  fileName: string,
  parseEnv?: (text: string) => Array<{ key: string; value: string }>,
): Decoded {
  if (kind === "opaque") return { draft: { kind, text: "", file: { name: fileName, bytes } } };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return {
      problem: `This file is not UTF-8 text; a ${KIND_LABELS[kind].toLowerCase()} secret is text.`,
    };
  }
  switch (kind) {
    case "certificate":
      return { draft: { kind, pem: text } };
    case "ssh_key": {
      const object = jsonObject(text);
      if (object && typeof object.ssh_private_key === "string") {
        return { draft: { kind, sshPrivateKey: object.ssh_private_key } };
      }
      return { draft: { kind, sshPrivateKey: text } };
    }
    case "key_value": {
      const object = jsonObject(text);
      if (object) return keyValueDraft(object);
      if (parseEnv && !text.trimStart().startsWith("{")) {
        try {
          const entries = parseEnv(text);
          if (entries.length > 0) {
            return { draft: { kind, rows: entries.map((e) => newRow(e.key, e.value)) } };
          }
        } catch (err) {
          return { problem: err instanceof Error ? err.message : "This .env file does not parse." };
        }
      }
      return { problem: "This file is not a JSON object or a .env file of KEY=value lines." };
    }
    case "basic_credentials": {
      const object = jsonObject(text);
      if (!object)
        return {
          problem: 'This file is not a JSON object like {"username": ..., "password": ...}.',
        };
      const fields = stringFields(object, ["username", "password"]);
      if ("problem" in fields) return fields;
      return {
        draft: {
          kind,
          username: fields.values.username ?? "",
          password: fields.values.password ?? "",
        },
      };
    }
    case "database_credentials": {
      const object = jsonObject(text);
      if (!object) {
        return {
          problem:
            "This file is not a JSON object with engine, host, port, dbname, username and password.",
        };
      }
      // A port written as a JSON number is what most people mean; it is sent as digits.
      if (typeof object.port === "number" && Number.isInteger(object.port))
        object.port = String(object.port);
      const fields = stringFields(object, [
        "engine",
        "username",
        "password",
        "host",
        "dbname",
        "port",
      ]);
      if ("problem" in fields) return fields;
      const v = fields.values;
      const engine = (DATABASE_ENGINES as readonly string[]).includes(v.engine ?? "")
        ? (v.engine as DatabaseEngine)
        : "other";
      return {
        draft: {
          kind,
          engine,
          host: v.host ?? "",
          port: v.port ?? "",
          dbname: v.dbname ?? "",
          username: v.username ?? "",
          password: v.password ?? "",
        },
      };
    }
  }
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      return value as Record<string, unknown>;
    }
  } catch {
    // Not JSON: the caller says what it expected.
  }
  return undefined;
}

function keyValueDraft(object: Record<string, unknown>): Decoded {
  const rows: KeyValueRow[] = [];
  for (const [key, value] of Object.entries(object)) {
    if (typeof value === "string") rows.push(newRow(key, value));
    else if (typeof value === "number" || typeof value === "boolean") {
      rows.push(newRow(key, String(value), typeof value === "number" ? "number" : "boolean"));
    } else {
      const got = value === null ? "null" : Array.isArray(value) ? "an array" : "an object";
      return {
        problem: `The key "${key}" holds ${got}; a key/value secret holds only strings, numbers and booleans.`,
      };
    }
  }
  return { draft: { kind: "key_value", rows: rows.length > 0 ? rows : [newRow()] } };
}

function stringFields(
  object: Record<string, unknown>,
  names: readonly string[],
): { values: Record<string, string> } | { problem: string } {
  const values: Record<string, string> = {};
  for (const key of Object.keys(object)) {
    if (!names.includes(key)) {
      return { problem: `The file has a field "${key}"; expected only ${names.join(", ")}.` };
    }
    const value = object[key];
    if (typeof value !== "string") return { problem: `The field "${key}" must be a string.` };
    values[key] = value;
  }
  return { values };
}
