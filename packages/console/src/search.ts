/**
 * The Secrets screen's state, kept in the URL's search params so a view can
 * be bookmarked, shared and navigated back to. Never holds a payload.
 */
export type SecretsView = "folders" | "list";
export type SecretsSort =
  | "name_asc"
  | "name_desc"
  | "created_desc"
  | "created_asc"
  | "updated_desc"
  | "updated_asc";
export type TriState = "yes" | "no";

export interface SecretsSearch {
  /** The folder browsed (folders view) or the folder the list is narrowed to (list view). */
  path?: string;
  view?: SecretsView;
  /** Exact secret name (list view). */
  name?: string;
  /** A tag every listed secret carries (list view). */
  tag?: string;
  /** A SecretType name in lower case, e.g. "key_value" (list view). */
  type?: string;
  protected?: TriState;
  ephemeral?: TriState;
  /** Show only the secrets scheduled for deletion. */
  deleted?: boolean;
  sort?: SecretsSort;
  page?: number;
}

const str = (v: unknown): string | undefined =>
  typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined;
const tri = (v: unknown): TriState | undefined => (v === "yes" || v === "no" ? v : undefined);
const SORTS: readonly SecretsSort[] = [
  "name_asc",
  "name_desc",
  "created_desc",
  "created_asc",
  "updated_desc",
  "updated_asc",
];

/** Reads the search params leniently: anything unknown or malformed is dropped. */
export function validateSecretsSearch(s: Record<string, unknown>): SecretsSearch {
  const out: SecretsSearch = {};
  const path = str(s.path);
  if (path?.startsWith("/")) out.path = path;
  if (s.view === "folders" || s.view === "list") out.view = s.view;
  const name = str(s.name);
  if (name !== undefined) out.name = name;
  const tag = str(s.tag);
  if (tag !== undefined) out.tag = tag;
  const type = str(s.type);
  if (type !== undefined) out.type = type;
  const p = tri(s.protected);
  if (p !== undefined) out.protected = p;
  const e = tri(s.ephemeral);
  if (e !== undefined) out.ephemeral = e;
  if (s.deleted === true || s.deleted === "true") out.deleted = true;
  if (SORTS.includes(s.sort as SecretsSort)) out.sort = s.sort as SecretsSort;
  const page = Number(s.page);
  if (Number.isInteger(page) && page > 1) out.page = page;
  return out;
}

/** The create screen's search: the folder to create in (from the Secrets screen). */
export interface CreateSecretSearch {
  path?: string;
}

export function validateCreateSecretSearch(s: Record<string, unknown>): CreateSecretSearch {
  const path = str(s.path);
  return path?.startsWith("/") ? { path } : {};
}

/** The import screen's search: the folder to import into. */
export type ImportSearch = CreateSecretSearch;
export const validateImportSearch = validateCreateSecretSearch;
