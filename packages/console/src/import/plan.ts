import { nameProblem } from "../secret-value/metadata.ts";
import { KIND_LABELS, payloadSizeProblem, type ValueKind } from "../secret-value/value-draft.ts";
import { describe, type ImportEntry } from "./parse.ts";

/**
 * The preview of a bulk import: one row per entry of the file, with the type
 * it becomes, whether a secret of that name already exists in the folder,
 * and what will be done. Nothing here talks to the server; the screen looks
 * the folder up and hands what it found to {@link planImport}.
 *
 * Type rules: a string (or a number or boolean, written as text) becomes an
 * opaque secret; an object whose values are all strings, numbers or
 * booleans becomes a key/value secret (its JSON); anything else (a list,
 * null, a nested object) is refused, with the reason.
 */

/** What is done with a row. */
export type RowAction = "create" | "new_version" | "skip";

/** A secret already in the folder, as the lookup found it. */
export interface ExistingSecret {
  id: string;
  kind: ValueKind;
}

export interface PlanRow {
  name: string;
  where: string;
  /** The type the value becomes; undefined when the row is refused before a type is known. */
  kind?: ValueKind;
  /** The payload; set unless the row is refused. */
  bytes?: Uint8Array;
  /** Why the row cannot be imported; set for refused rows, whose action is "skip". */
  refused?: string;
  /** The secret of that name already in the folder. */
  existing?: ExistingSecret;
  /** Why a new version cannot be added to the existing secret, when it cannot. */
  noNewVersion?: string;
  /** The actions a person may choose for this row. */
  choices: RowAction[];
  action: RowAction;
}

const utf8 = new TextEncoder();

/** The type and payload of one value, or why it cannot be a secret. */
export function typeOfValue(
  value: unknown,
): { kind: ValueKind; bytes: Uint8Array } | { refused: string } {
  if (typeof value === "string") return { kind: "opaque", bytes: utf8.encode(value) };
  if (typeof value === "number" || typeof value === "boolean") {
    return { kind: "opaque", bytes: utf8.encode(String(value)) };
  }
  if (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Date)
  ) {
    for (const [key, inner] of Object.entries(value)) {
      if (typeof inner !== "string" && typeof inner !== "number" && typeof inner !== "boolean") {
        return {
          refused: `Not flat: "${key}" holds ${describe(inner)}; only an object of strings, numbers and booleans becomes a key/value secret.`,
        };
      }
    }
    return { kind: "key_value", bytes: utf8.encode(JSON.stringify(value)) };
  }
  return {
    refused: `Holds ${describe(value)}; a secret is a string (opaque) or a flat object (key/value).`,
  };
}

/**
 * Plans an import of `entries` into one folder, where `existing` maps the
 * names already there to their secrets. A new name is created unless the
 * person chooses to skip it; an existing one is skipped unless they choose a new version (offered when the
 * payload fits the existing secret's type). A name given twice in the file
 * is refused at its earlier place: the later value wins, as in a shell.
 */
export function planImport(
  entries: readonly ImportEntry[],
  existing: ReadonlyMap<string, ExistingSecret>,
): PlanRow[] {
  const lastIndex = new Map<string, number>();
  entries.forEach((e, i) => {
    lastIndex.set(e.name, i);
  });
  return entries.map((entry, index): PlanRow => {
    const base = { name: entry.name, where: entry.where };
    const refuse = (reason: string, kind?: ValueKind): PlanRow => ({
      ...base,
      ...(kind ? { kind } : {}),
      refused: reason,
      choices: ["skip"],
      action: "skip",
    });
    const later = lastIndex.get(entry.name) ?? index;
    if (later !== index) {
      return refuse(`Given again at ${entries[later]?.where}; the later value is imported.`);
    }
    const name = nameProblem(entry.name);
    if (name) return refuse(name);
    const typed = typeOfValue(entry.value);
    if ("refused" in typed) return refuse(typed.refused);
    const size = payloadSizeProblem(typed.bytes.byteLength);
    if (size) return refuse(size, typed.kind);
    const found = existing.get(entry.name);
    if (!found) {
      return {
        ...base,
        kind: typed.kind,
        bytes: typed.bytes,
        choices: ["create", "skip"],
        action: "create",
      };
    }
    // The server checks a new version against the existing secret's type:
    // any bytes fit an opaque secret, otherwise the types must match.
    const fits = found.kind === "opaque" || found.kind === typed.kind;
    return {
      ...base,
      kind: typed.kind,
      bytes: typed.bytes,
      existing: found,
      ...(fits
        ? {}
        : {
            noNewVersion: `The existing secret is ${KIND_LABELS[found.kind].toLowerCase()}; this value is ${KIND_LABELS[typed.kind].toLowerCase()}.`,
          }),
      choices: fits ? ["skip", "new_version"] : ["skip"],
      action: "skip",
    };
  });
}

/** The rows that will write something. */
export function rowsToWrite(rows: readonly PlanRow[]): PlanRow[] {
  return rows.filter((r) => r.action !== "skip");
}
