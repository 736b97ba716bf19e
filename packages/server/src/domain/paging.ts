import { createHash } from "node:crypto";
import type { KeyKind, KeyValue, PageWindow } from "../db/keyset.ts";
import { invalid } from "./errors.ts";
import { textProblem, validatePage } from "./validation.ts";

/**
 * Page tokens: opaque keyset cursors for every list RPC.
 *
 * A token is base64url of `{"v":1,"q":<binding>,"k":[<sort key>]}`. The
 * binding is a hash of the list and of the request's normalised filters and
 * order, so a token used with another query is refused rather than
 * silently positioned in the wrong order. Tokens are not signed: a token
 * can only say where in a listing to start, and the listing's filters and
 * the caller's grants are applied afresh on every page, so a forged token
 * reveals nothing its holder could not list anyway. Every value is checked
 * for its type before it reaches SQL, so a damaged token is INVALID_ARGUMENT
 * naming page_token, never INTERNAL.
 */

const VERSION = 1;
/** Far longer than any token this server issues (a key of a few names). */
const MAX_TOKEN_LENGTH = 4096;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const RESTART = "start again without page_token";

/** The paging fields every list request carries. */
export interface PageInput {
  page: number;
  pageSize: number;
  /** "" when absent. */
  pageToken?: string;
}

/**
 * What a list answers besides its items: the total over all pages, and the
 * token of the next page ("" on the last).
 */
export interface ListPage {
  totalCount: number;
  nextPageToken: string;
}

/** Where a list query reads, and how to make the token of the page after it. */
export interface Paging extends PageWindow {
  /** The token for the page after a page ending at `key`. */
  tokenAfter(key: KeyValue[]): string;
  /**
   * The ListPage of what the query found: its total, and the key of the
   * page's last row when more rows follow.
   */
  listPage(found: { total: number; next?: KeyValue[] }): ListPage;
}

function bindingOf(list: string, query: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify([list, query]))
    .digest("base64url")
    .slice(0, 22);
}

function valueFits(value: unknown, kind: KeyKind): value is KeyValue {
  switch (kind) {
    case "uuid":
      return typeof value === "string" && UUID.test(value);
    case "ts":
      return typeof value === "string" && MICROS.test(value) && !Number.isNaN(Date.parse(value));
    case "int":
      return typeof value === "number" && Number.isInteger(value) && Math.abs(value) <= 2 ** 31;
    default:
      return typeof value === "string" && value.length <= 2048 && textProblem(value) === undefined;
  }
}

/**
 * Reads a list request's paging: a page number (offset, as before) or a page
 * token (keyset). `list` and `query` (the normalised filters and order) bind
 * the token; `kinds` types the sort key, in order.
 */
export function openPage(
  input: PageInput,
  list: string,
  query: unknown,
  kinds: KeyKind[] | ((key: unknown[]) => KeyKind[] | undefined),
): Paging {
  const binding = bindingOf(list, query);
  const tokenAfter = (key: KeyValue[]) =>
    Buffer.from(JSON.stringify({ v: VERSION, q: binding, k: key })).toString("base64url");
  const listPage = ({ total, next }: { total: number; next?: KeyValue[] }): ListPage => ({
    totalCount: total,
    nextPageToken: next === undefined ? "" : tokenAfter(next),
  });
  const token = input.pageToken ?? "";
  if (token === "") return { ...validatePage(input.page, input.pageSize), tokenAfter, listPage };
  if (input.page !== 0) {
    throw invalid(
      "page_token",
      "cannot be combined with page: page numbers and page tokens are two ways to page; use one",
    );
  }
  const { limit } = validatePage(0, input.pageSize);
  const bad = () => invalid("page_token", `is not a page token this server issued; ${RESTART}`);
  if (token.length > MAX_TOKEN_LENGTH || !BASE64URL.test(token)) throw bad();
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (decoded === null || typeof decoded !== "object") throw bad();
  const { v, q, k } = decoded as Record<string, unknown>;
  if (v !== VERSION || typeof q !== "string" || !Array.isArray(k)) throw bad();
  if (q !== binding) {
    throw invalid(
      "page_token",
      `belongs to a listing with other filters or another order; pass the same filters and order_by as the request that returned it, or ${RESTART}`,
    );
  }
  const expected = typeof kinds === "function" ? kinds(k) : kinds;
  if (expected === undefined || k.length !== expected.length) throw bad();
  if (!k.every((value, i) => valueFits(value, expected[i] ?? "text"))) throw bad();
  return { offset: 0, limit, after: k as KeyValue[], tokenAfter, listPage };
}
