import { and, asc, desc, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable, SelectedFieldsFlat } from "drizzle-orm/pg-core";
import type { SelectResultFields } from "drizzle-orm/query-builders/select.types";
import type { Executor } from "./client.ts";

/**
 * Keyset paging, shared by every list query. A page after a key reads the
 * rows strictly after it in the list's order (sort columns, then the id as
 * tiebreaker), so rows created or deleted elsewhere in the list never shift
 * the rows of the next page: each row that exists throughout is read once.
 */

/** One value of a sort key, as carried in a page token. */
export type KeyValue = string | number;
/** How a key value is typed in SQL: text, uuid, timestamp (microseconds, UTC ISO text), int. */
export type KeyKind = "text" | "uuid" | "ts" | "int";

/**
 * A list's order: its columns (the id last, as tiebreaker), their SQL kinds,
 * and the direction they all run.
 */
export interface SortKey {
  columns: (PgColumn | SQL)[];
  kinds: KeyKind[];
  direction: "asc" | "desc";
}

/** The page a list query reads: an offset (page numbers) or the key to start after. */
export interface PageWindow {
  offset: number;
  limit: number;
  after?: KeyValue[];
}

/**
 * A timestamp column as ISO text with its full microsecond precision (a JS
 * Date keeps only milliseconds, which would repeat or skip rows created
 * within the same millisecond).
 */
function microsText(column: PgColumn | SQL): SQL<string> {
  return sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

function typed(value: KeyValue, kind: KeyKind): SQL {
  switch (kind) {
    case "uuid":
      return sql`${value}::uuid`;
    case "ts":
      return sql`${value}::timestamptz`;
    case "int":
      return sql`${value}::int`;
    default:
      return sql`${value}::text`;
  }
}

/**
 * `(c1, c2, ...) > (v1, v2, ...)` (or `<` for a descending order): the rows
 * after a key. Every column of an order runs the same direction, so one row
 * comparison is exact, and it compares text with the column's own collation,
 * the one ORDER BY uses.
 */
function afterKey(
  columns: (PgColumn | SQL)[],
  kinds: KeyKind[],
  values: KeyValue[],
  direction: "asc" | "desc",
): SQL {
  const right = values.map((v, i) => typed(v, kinds[i] ?? "text"));
  return sql`(${sql.join(columns, sql`, `)}) ${direction === "asc" ? sql.raw(">") : sql.raw("<")} (${sql.join(right, sql`, `)})`;
}

/**
 * Cuts the `limit + 1` rows a query read down to the page, and gives the key
 * of its last row when more rows follow.
 */
export function cutPage<R>(
  rows: R[],
  limit: number,
  keyOf: (row: R) => KeyValue[],
): { rows: R[]; more: boolean; next?: KeyValue[] } {
  if (rows.length <= limit) return { rows, more: false };
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  // An empty page (limit 0) says only that rows follow: it has no key.
  return last === undefined
    ? { rows: page, more: true }
    : { rows: page, more: true, next: keyOf(last) };
}

/** A list query: what `readPage` reads. */
export interface ListQuery<F extends SelectedFieldsFlat> {
  /** The columns of each row. */
  fields: F;
  table: PgTable;
  where: SQL | undefined;
  sort: SortKey;
}

/**
 * One page of a list, with the total over all pages: the rows `where`
 * matches after the page's key (or from its offset) in the sort key's order,
 * read one past the page to tell whether more follow (cutPage), and the
 * count of every row `where` matches. Each row's sort key is read with it,
 * a timestamp as microsecond text (microsText), for the next page's token.
 */
export async function readPage<F extends SelectedFieldsFlat>(
  ex: Executor,
  query: ListQuery<F>,
  page: PageWindow,
): Promise<{ rows: SelectResultFields<F>[]; total: number; more: boolean; next?: KeyValue[] }> {
  const { where, sort } = query;
  const keyColumns = sort.columns.map((c, i) => (sort.kinds[i] === "ts" ? microsText(c) : c));
  const pageKey = sql<KeyValue[]>`json_build_array(${sql.join(keyColumns, sql`, `)})`;
  const [rows, [count]] = await Promise.all([
    ex
      .select({ ...query.fields, pageKey })
      .from(query.table)
      .where(
        page.after === undefined
          ? where
          : and(where, afterKey(sort.columns, sort.kinds, page.after, sort.direction)),
      )
      .orderBy(...sort.columns.map((c) => (sort.direction === "asc" ? asc(c) : desc(c))))
      .offset(page.offset)
      .limit(page.limit + 1),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(query.table)
      .where(where),
  ]);
  const cut = cutPage(rows, page.limit, (r) => r.pageKey);
  return {
    ...cut,
    rows: cut.rows.map(({ pageKey: _, ...row }) => row as SelectResultFields<F>),
    total: count?.n ?? 0,
  };
}
