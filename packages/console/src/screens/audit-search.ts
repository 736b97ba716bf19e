/**
 * The Audit screen's filters, kept in the URL's search params so that a view
 * can be bookmarked and shared. Ids, a method name, an outcome and times:
 * never a payload or a token's value.
 */
export interface AuditSearch {
  /** A secret's id: that secret's events only. */
  secret?: string;
  /**
   * Every project's events, and those filed under none (a refused sign-in
   * vouched for by no binding): a global admin's view; others ignore it.
   */
  all?: true;
  /** A token's id: the calls made with it. */
  token?: string;
  /** A full method name, e.g. "coffer.secretmanager.v1.SecretService/AccessSecretVersion". */
  method?: string;
  /** A status code name, e.g. "OK" or "PERMISSION_DENIED". */
  outcome?: string;
  /** From and to, as a local date and time ("2026-12-05T09:30"). */
  from?: string;
  to?: string;
  page?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const METHOD = /^[A-Za-z0-9_.]+\/[A-Za-z0-9_]+$/;
const OUTCOME = /^[A-Z_]+$/;
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** Reads the search params leniently: anything unknown or malformed is dropped. */
export function validateAuditSearch(s: Record<string, unknown>): AuditSearch {
  const out: AuditSearch = {};
  const secret = str(s.secret);
  if (secret !== undefined && UUID.test(secret)) out.secret = secret;
  if (s.all === true || s.all === "true") out.all = true;
  const token = str(s.token);
  if (token !== undefined && UUID.test(token)) out.token = token;
  const method = str(s.method);
  if (method !== undefined && METHOD.test(method)) out.method = method;
  const outcome = str(s.outcome);
  if (outcome !== undefined && OUTCOME.test(outcome)) out.outcome = outcome;
  const from = str(s.from);
  if (from !== undefined && LOCAL_TIME.test(from)) out.from = from;
  const to = str(s.to);
  if (to !== undefined && LOCAL_TIME.test(to)) out.to = to;
  const page = Number(s.page);
  if (Number.isInteger(page) && page > 1) out.page = page;
  return out;
}
