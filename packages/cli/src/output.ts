import { type DescEnum, type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { UsageError } from "./errors.ts";

/**
 * How results are shown: tables and "key: value" blocks for people, the
 * proto JSON mapping for scripts (`-o json`). Nothing here ever sees a
 * payload: `version access` writes payload bytes itself.
 */

/** The formats of `-o`. */
export type OutputFormat = "table" | "json";

export const OUTPUT_FORMATS: readonly OutputFormat[] = ["table", "json"];

/** Checks the value of `-o`. */
export function parseOutputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === "table") return "table";
  if (value === "json") return "json";
  throw new UsageError(`-o must be table or json (got "${value}")`);
}

/**
 * A message as JSON text, in the proto3 JSON mapping (camelCase names, enums
 * by their proto names, 64-bit integers as strings, bytes as base64), with
 * every field present, so scripts can read `.protected` without a default.
 */
export function jsonText<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): string {
  return `${JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true }), null, 2)}\n`;
}

/**
 * Escapes control characters (and backslashes) so that a value a server
 * stored (a description, a tag) cannot move the cursor or forge a line.
 */
export function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
  return text.replace(/[\\\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === "\\" ? "\\\\" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function formatTable(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows.map((r) => r.map(clean))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  const lines = all.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
  return `${lines.join("\n")}\n`;
}

/** One resource as aligned `key: value` lines; empty values are left out. */
export function formatDetails(pairs: [string, string | undefined][]): string {
  const shown = pairs.filter((p): p is [string, string] => p[1] !== undefined && p[1] !== "");
  const width = Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${clean(v)}\n`).join("");
}

/** An enum value in lower snake case, without its prefix: `database_credentials`. */
export function enumName(schema: DescEnum, value: number): string {
  const v = schema.values.find((e) => e.number === value);
  return v === undefined ? String(value) : v.localName.toLowerCase();
}

/** The values a flag accepts for an enum: every value but UNSPECIFIED, in lower snake case. */
export function enumChoices(schema: DescEnum): string[] {
  return schema.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase());
}

/**
 * Reads an enum flag: `database_credentials`, `DATABASE_CREDENTIALS` or the
 * proto name `SECRET_TYPE_DATABASE_CREDENTIALS`.
 * @throws UsageError naming the flag and the choices.
 */
export function parseEnum<T extends number>(schema: DescEnum, text: string, flag: string): T {
  const wanted = text.trim().toLowerCase().replaceAll("-", "_");
  const found = schema.values.find(
    (v) =>
      v.number !== 0 && (v.localName.toLowerCase() === wanted || v.name.toLowerCase() === wanted),
  );
  if (found === undefined) {
    throw new UsageError(
      `${flag} must be one of ${enumChoices(schema).join(", ")} (got "${text}")`,
    );
  }
  return found.number as T;
}

/** A timestamp as ISO 8601 to the second, UTC; "" when unset. */
export function formatTime(ts: Timestamp | undefined): string {
  if (ts === undefined) return "";
  return timestampDate(ts)
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z");
}

/** `/prod/db` from a folder and a name. */
export function fullPath(path: string, name: string): string {
  return path === "/" || path === "" ? `/${name}` : `${path}/${name}`;
}
