import { KIND_LABELS, type PlanRow, type ValueKind } from "@coffer/console/import";
import { formatTable } from "../output.ts";

/**
 * `coffer import`'s rows: the console's plan (planImport: types, names,
 * sizes, duplicates, whether a new version fits) with what the command line
 * adds to it: whether an existing secret already holds the value
 * ("unchanged"), and --new-versions choosing a new version for every
 * existing secret that differs. Pure: import-run.ts does the calls.
 * Nothing here holds or prints a value beyond the bytes to write.
 */

/** What is done with a row, as the preview says it. */
export type ImportAction = "create" | "new_version" | "unchanged" | "exists" | "refused";

/** What comparing an existing secret's newest enabled value with the file's found. */
export type Comparison =
  | { kind: "equal" }
  | { kind: "different" }
  /** Not read: the reason, e.g. "single-access secrets are not read". */
  | { kind: "not_compared"; why: string };

export interface ImportRow {
  name: string;
  where: string;
  kind?: ValueKind;
  action: ImportAction;
  /** Why the row is refused, or a note on an existing secret. */
  note?: string;
  /** The existing secret's id, for a new version. */
  secretId?: string;
  /** The payload to write; set for "create" and "new_version" rows only. */
  bytes?: Uint8Array;
}

/** What writing a row did. */
export type RowResult =
  | { outcome: "created"; secretId: string }
  | { outcome: "new_version"; revision: number }
  | { outcome: "failed"; error: string };

/**
 * Whether `stored` (the newest enabled payload of a secret of `storedKind`)
 * holds the same value as `bytes` (a value of `kind` from the file). A
 * key/value payload is compared as JSON (key order and spacing aside);
 * anything else byte for byte.
 */
export function sameValue(
  kind: ValueKind,
  bytes: Uint8Array,
  storedKind: ValueKind,
  stored: Uint8Array,
): boolean {
  if (kind === "key_value" && storedKind === "key_value") {
    const a = canonicalJson(bytes);
    return a !== undefined && a === canonicalJson(stored);
  }
  if (bytes.byteLength !== stored.byteLength) return false;
  return bytes.every((b, i) => b === stored[i]);
}

function canonicalJson(bytes: Uint8Array): string | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    const sorted = Object.fromEntries(
      Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
    return JSON.stringify(sorted);
  } catch {
    return undefined;
  }
}

/**
 * The command's rows from the console's plan: refused rows stay refused;
 * a new name is created; an existing secret is "unchanged" when its value
 * compared equal, else gets a new version with `newVersions` (refused when
 * the value does not fit its type), else "exists".
 */
export function importRows(
  plan: readonly PlanRow[],
  compared: ReadonlyMap<string, Comparison>,
  newVersions: boolean,
): ImportRow[] {
  return plan.map((row): ImportRow => {
    const base = { name: row.name, where: row.where, ...(row.kind && { kind: row.kind }) };
    if (row.refused !== undefined) return { ...base, action: "refused", note: row.refused };
    if (row.existing === undefined) {
      return { ...base, action: "create", ...(row.bytes && { bytes: row.bytes }) };
    }
    const comparison = compared.get(row.name) ?? {
      kind: "not_compared",
      why: "not compared",
    };
    if (comparison.kind === "equal") {
      return {
        ...base,
        action: "unchanged",
        note: "The newest enabled version holds this value.",
      };
    }
    const state =
      comparison.kind === "different"
        ? "Differs from the newest enabled version"
        : `Already in the folder (${comparison.why})`;
    if (row.noNewVersion !== undefined) {
      // A value of another type cannot become a version of this secret.
      return newVersions
        ? { ...base, action: "refused", note: row.noNewVersion }
        : { ...base, action: "exists", note: `${state}. ${row.noNewVersion}` };
    }
    if (newVersions && row.bytes) {
      return {
        ...base,
        action: "new_version",
        secretId: row.existing.id,
        bytes: row.bytes,
        note: `${state}.`,
      };
    }
    return {
      ...base,
      action: "exists",
      note: `${state}; --new-versions adds it as a new version.`,
    };
  });
}

/** The rows that write something. */
export function rowsToApply(rows: readonly ImportRow[]): ImportRow[] {
  return rows.filter((r) => r.action === "create" || r.action === "new_version");
}

const ACTION_TEXT: Record<ImportAction, string> = {
  create: "create",
  new_version: "new version",
  unchanged: "unchanged",
  exists: "exists",
  refused: "refused",
};

function resultText(result: RowResult | undefined): string {
  if (result === undefined) return "";
  switch (result.outcome) {
    case "created":
      return "created";
    case "new_version":
      return `new version ${result.revision}`;
    case "failed":
      return "FAILED";
  }
}

/** "3 to create, 1 new version, 2 unchanged, 0 exist, 1 refused". */
export function summary(rows: readonly ImportRow[]): string {
  const n = (a: ImportAction) => rows.filter((r) => r.action === a).length;
  return `${n("create")} to create, ${n("new_version")} new ${n("new_version") === 1 ? "version" : "versions"}, ${n("unchanged")} unchanged, ${n("exists")} existing left as they are, ${n("refused")} refused`;
}

/**
 * The preview (and, with `results`, the outcome) as a table: one row per
 * entry, never a value.
 */
export function importTable(
  rows: readonly ImportRow[],
  results?: ReadonlyMap<ImportRow, RowResult>,
): string {
  const headers = ["NAME", "TYPE", "ACTION", ...(results ? ["RESULT"] : []), "DETAIL"];
  const cells = rows.map((row) => {
    const result = results?.get(row);
    // A failed row says why it failed rather than what was planned.
    const note = result?.outcome === "failed" ? result.error : row.note;
    const detail = note === undefined ? row.where : `${row.where}: ${note}`;
    return [
      row.name,
      row.kind ? KIND_LABELS[row.kind].toLowerCase() : "-",
      ACTION_TEXT[row.action],
      ...(results ? [resultText(result) || "-"] : []),
      detail,
    ];
  });
  return formatTable(headers, cells);
}

/** The preview (and outcome) for `-o json`: names, types, actions and notes, never a value. */
export function importJson(
  context: { path: string; format: string; dryRun: boolean },
  rows: readonly ImportRow[],
  results?: ReadonlyMap<ImportRow, RowResult>,
): string {
  const out = {
    path: context.path,
    format: context.format,
    dryRun: context.dryRun,
    rows: rows.map((row) => {
      const result = results?.get(row);
      return {
        name: row.name,
        where: row.where,
        type: row.kind ?? null,
        action: row.action,
        note: row.note ?? null,
        ...(result !== undefined && { result }),
      };
    }),
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}
