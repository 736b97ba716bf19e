import { and, desc, eq, getTableColumns, gt, isNull, or, type SQL, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { afterKey, cutPage, type KeyValue, microsText, type PageWindow } from "./keyset.ts";
import { type StoredGrant, type TokenRow, tokens } from "./schema.ts";

/** The token with this hash, whatever its state (revoked, expired), or undefined. */
export async function findTokenByHash(
  ex: Executor,
  hash: Uint8Array,
): Promise<TokenRow | undefined> {
  const [row] = await ex.select().from(tokens).where(eq(tokens.hash, hash));
  return row;
}

/** The token with this id, whatever its state, or undefined. */
export async function findToken(ex: Executor, id: string): Promise<TokenRow | undefined> {
  const [row] = await ex.select().from(tokens).where(eq(tokens.id, id));
  return row;
}

export interface NewTokenRow {
  id: string;
  name: string;
  prefix: string;
  /** SHA-256 of the value; the value itself is never stored. */
  hash: Uint8Array;
  grants: StoredGrant[];
  expiresAt: Date | null;
}

/** Inserts a token and returns its row (with the database's creation time). */
export async function insertToken(ex: Executor, token: NewTokenRow): Promise<TokenRow> {
  const [row] = await ex.insert(tokens).values(token).returning();
  if (row === undefined) throw new Error("insert into tokens returned no row");
  return row;
}

/** Whether the table holds any token at all, in any state. */
export async function anyToken(ex: Executor): Promise<boolean> {
  const [row] = await ex.select({ id: tokens.id }).from(tokens).limit(1);
  return row !== undefined;
}

/**
 * Revokes a token that is not revoked yet, in one statement: of two
 * concurrent revocations exactly one gets the row back, and the first
 * revocation time is kept. Undefined when the token does not exist or was
 * already revoked.
 */
export async function revokeToken(ex: Executor, id: string): Promise<TokenRow | undefined> {
  const [row] = await ex
    .update(tokens)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(tokens.id, id), isNull(tokens.revokedAt)))
    .returning();
  return row;
}

export interface TokenFilter {
  /** Only tokens with at least one grant on this project. */
  projectId?: string;
  /** Only tokens whose every grant is on one of these projects (a global admin grant never is). */
  within?: readonly string[];
  /** Include revoked and expired tokens. */
  includeInactive: boolean;
}

/** The ids of the projects a grants column names, as a set-returning SQL expression. */
const grantProjects = sql`(select g->>'projectId' from jsonb_array_elements(${tokens.grants}) g)`;

function filterSql(f: TokenFilter): SQL | undefined {
  return and(
    f.projectId === undefined ? undefined : sql`${f.projectId} in ${grantProjects}`,
    f.within === undefined
      ? undefined
      : sql`not exists (select 1 from jsonb_array_elements(${tokens.grants}) g where not (g->>'projectId' in (select jsonb_array_elements_text(${JSON.stringify(f.within)}::jsonb))))`,
    f.includeInactive
      ? undefined
      : and(
          isNull(tokens.revokedAt),
          or(isNull(tokens.expiresAt), gt(tokens.expiresAt, sql`now()`)),
        ),
  );
}

/** Tokens, newest first, with the total. */
export async function listTokens(
  ex: Executor,
  filter: TokenFilter,
  page: PageWindow,
): Promise<{ rows: TokenRow[]; total: number; next?: KeyValue[] }> {
  const where = filterSql(filter);
  const [rows, [count]] = await Promise.all([
    ex
      .select({ ...getTableColumns(tokens), createdAtKey: microsText(tokens.createdAt) })
      .from(tokens)
      .where(
        page.after === undefined
          ? where
          : and(where, afterKey([tokens.createdAt, tokens.id], ["ts", "uuid"], page.after, "desc")),
      )
      .orderBy(desc(tokens.createdAt), desc(tokens.id))
      .offset(page.offset)
      .limit(page.limit + 1),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(tokens)
      .where(where),
  ]);
  const cut = cutPage(rows, page.limit, (r) => [r.createdAtKey, r.id]);
  return {
    rows: cut.rows.map(({ createdAtKey: _, ...row }) => row),
    total: count?.n ?? 0,
    ...(cut.next && { next: cut.next }),
  };
}
