import {
  formatDotenv,
  type ImportFormat,
  isDotenvKey,
  type ValueKind,
} from "@coffer/console/import";
import { stringify as stringifyYaml } from "yaml";
import { CliError, ExitCode } from "../errors.ts";

/**
 * What `coffer export` writes, from the secrets it read: pure, so that the
 * rules (how each type is written, what .env quotes) are tested without a
 * server, and so that what is written reads back through `coffer import`
 * (the console's parsers) as the same values.
 *
 * - opaque and certificate: the payload as text (refused when it is not UTF-8);
 * - key_value and the other JSON types (basic_credentials,
 *   database_credentials, ssh_key): an object in JSON and YAML, its JSON
 *   text (as stored) in .env, which has only strings.
 */

/** One secret to write: its name, type and newest enabled payload. */
export interface ExportedSecret {
  name: string;
  kind: ValueKind;
  data: Uint8Array;
}

const JSON_KINDS = new Set<ValueKind>([
  "key_value",
  "basic_credentials",
  "database_credentials",
  "ssh_key",
]);

/**
 * The names that cannot be written in `format`, with why: for .env, names
 * that are not .env keys (a secret name may start with a digit, "." or "-").
 * Checked before any payload is read.
 */
export function unexportableNames(names: readonly string[], format: ImportFormat): string[] {
  return format === "env" ? names.filter((n) => !isDotenvKey(n)) : [];
}

/** The payload as text, or undefined when it is not UTF-8. */
function textOf(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}

/**
 * The file's text.
 * @throws CliError naming the secrets whose payload is not UTF-8 text (never the payload).
 */
export function formatExport(secrets: readonly ExportedSecret[], format: ImportFormat): string {
  const notText: string[] = [];
  const values: [string, string | Record<string, unknown>][] = [];
  for (const s of secrets) {
    const text = textOf(s.data);
    if (text === undefined) {
      notText.push(s.name);
      continue;
    }
    if (format !== "env" && JSON_KINDS.has(s.kind)) {
      values.push([s.name, JSON.parse(text) as Record<string, unknown>]);
    } else {
      values.push([s.name, text]);
    }
  }
  if (notText.length > 0) {
    throw new CliError(
      `cannot export ${notText.join(", ")}: the payload is not UTF-8 text, which a ${format === "env" ? ".env" : format.toUpperCase()} file cannot hold`,
      ExitCode.Failure,
      "read it as it is with: coffer version access /path/name --raw > FILE",
    );
  }
  if (format === "env") {
    return formatDotenv(values.map(([key, value]) => ({ key, value: value as string })));
  }
  const object = Object.fromEntries(values);
  if (format === "json") return `${JSON.stringify(object, null, 2)}\n`;
  // No line folding, no aliases: the text reads back as the same strings.
  // Written by YAML 1.1's rules, so that a string a 1.1 reader (PyYAML, Ruby)
  // would take for something else (on, no, 0123, 1_000) is quoted; coffer
  // import reads YAML 1.2, where those quotes change nothing.
  return stringifyYaml(object, { lineWidth: 0, aliasDuplicateObjects: false, version: "1.1" });
}
