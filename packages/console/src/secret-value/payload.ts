import { SecretType } from "@coffer/api";

/** A payload read for display: its text when it is UTF-8, and its fields per type. */
export type ShownValue =
  | { kind: "text"; text: string; mono: boolean }
  | { kind: "fields"; fields: [string, string][] }
  | { kind: "binary"; size: number };

/** The payload as text, or undefined when it is not valid UTF-8. */
export function utf8(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}

const DB_FIELDS = ["engine", "host", "port", "dbname", "username", "password"] as const;

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const scalar = (v: unknown): string =>
  typeof v === "string" ? v : v === undefined ? "" : JSON.stringify(v);

/**
 * How a payload reads for a person, by its secret's type: key/value pairs as
 * rows, credentials as their fields, PEM and SSH keys as monospaced text,
 * bytes that are not text as their size. A payload that does not parse as
 * its type says (it was stored by an older rule, or the type is opaque) is
 * shown as text.
 */
export function showValue(type: SecretType, data: Uint8Array): ShownValue {
  const text = utf8(data);
  if (text === undefined) return { kind: "binary", size: data.byteLength };
  const obj =
    type === SecretType.KEY_VALUE ||
    type === SecretType.BASIC_CREDENTIALS ||
    type === SecretType.DATABASE_CREDENTIALS ||
    type === SecretType.SSH_KEY
      ? jsonObject(text)
      : undefined;
  if (obj !== undefined) {
    switch (type) {
      case SecretType.KEY_VALUE:
        return { kind: "fields", fields: Object.entries(obj).map(([k, v]) => [k, scalar(v)]) };
      case SecretType.BASIC_CREDENTIALS:
        return {
          kind: "fields",
          fields: [
            ["username", scalar(obj.username)],
            ["password", scalar(obj.password)],
          ],
        };
      case SecretType.DATABASE_CREDENTIALS:
        return { kind: "fields", fields: DB_FIELDS.map((f) => [f, scalar(obj[f])]) };
      case SecretType.SSH_KEY:
        return { kind: "text", text: scalar(obj.ssh_private_key), mono: true };
    }
  }
  return { kind: "text", text, mono: true };
}

/** What "Copy" puts on the clipboard: the text, or base64 for bytes that are not text. */
export function clipboardText(data: Uint8Array): { text: string; base64: boolean } {
  const text = utf8(data);
  if (text !== undefined) return { text, base64: false };
  let bin = "";
  for (const b of data) bin += String.fromCharCode(b);
  return { text: btoa(bin), base64: true };
}
