import { and, eq, getTableColumns, gt, inArray, isNull, or, type SQL, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { type KeyValue, type PageWindow, readPage } from "./keyset.ts";
import { rowsOf } from "./raw-sql.ts";
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

/**
 * The grants of every live token (neither revoked nor expired) holding a grant
 * on the project, one array per token. Global admins are left out: they hold
 * every permission everywhere.
 */
export async function liveGrantsOnProject(
  ex: Executor,
  projectId: string,
): Promise<StoredGrant[][]> {
  const rows = await ex
    .select({ grants: tokens.grants })
    .from(tokens)
    .where(
      and(
        isNull(tokens.revokedAt),
        or(isNull(tokens.expiresAt), gt(tokens.expiresAt, sql`now()`)),
        sql`${tokens.grants} @> ${JSON.stringify([{ projectId }])}::jsonb`,
      ),
    );
  return rows.map((r) => r.grants);
}

export interface NewTokenRow {
  id: string;
  name: string;
  prefix: string;
  /** SHA-256 of the value; the value itself is never stored. */
  hash: Uint8Array;
  grants: StoredGrant[];
  expiresAt: Date | null;
  /** The token whose call creates this one; null for the bootstrap admin token and exchanged tokens. */
  createdBy: string | null;
  /** For an exchanged token (AuthService.ExchangeToken): its binding, and the JWT's issuer and subject. */
  bindingId?: string | null;
  issuer?: string | null;
  subject?: string | null;
}

/** Inserts a token and returns its row (with the database's creation time). */
export async function insertToken(ex: Executor, token: NewTokenRow): Promise<TokenRow> {
  const [row] = await ex.insert(tokens).values(token).returning();
  if (row === undefined) throw new Error("insert into tokens returned no row");
  return row;
}

/**
 * The token with this id, locked FOR SHARE until the transaction ends: a
 * revocation of it (an UPDATE) waits for the transaction, and the row read
 * is the newest committed one, so a token revoked a moment ago is seen as
 * revoked. createToken holds this on the creator while it inserts the child.
 */
export async function lockTokenShared(ex: Executor, id: string): Promise<TokenRow | undefined> {
  const [row] = await ex.select().from(tokens).where(eq(tokens.id, id)).for("share");
  return row;
}

/**
 * Revokes every token created by `rootId`, transitively, and returns the
 * rows it revoked (not those revoked before). Call it after revoking the
 * root in the same transaction.
 *
 * One level per statement, on purpose: a token being created holds its
 * creator FOR SHARE (lockTokenShared), so revoking a level waits for
 * creations under it to commit, and the next level's statement, with a
 * fresh snapshot, sees the tokens they made. A single recursive statement
 * would read the tree from before the wait and miss them. Tokens already
 * revoked are walked through too: their children are revoked as well.
 */
export async function revokeDescendants(ex: Executor, rootId: string): Promise<TokenRow[]> {
  const revoked: TokenRow[] = [];
  let level = [rootId];
  while (level.length > 0) {
    const children = await ex
      .select({ id: tokens.id })
      .from(tokens)
      .where(inArray(tokens.createdBy, level));
    level = children.map((c) => c.id);
    if (level.length === 0) break;
    revoked.push(
      ...(await ex
        .update(tokens)
        .set({ revokedAt: sql`now()` })
        .where(and(inArray(tokens.id, level), isNull(tokens.revokedAt)))
        .returning()),
    );
  }
  return revoked;
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
  return readPage(
    ex,
    {
      fields: getTableColumns(tokens),
      table: tokens,
      where: filterSql(filter),
      sort: { columns: [tokens.createdAt, tokens.id], kinds: ["ts", "uuid"], direction: "desc" },
    },
    page,
  );
}

/**
 * Which of these token ids no longer name a usable token: revoked, expired,
 * or gone. Used to end the watch streams of tokens whose revocation this
 * replica may not have been told about.
 */
export async function unusableTokens(ex: Executor, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = rowsOf<{ id: string }>(
    await ex.execute(sql`
      select x.id from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) as x(id)
      where not exists (
        select 1 from tokens t
        where t.id = x.id::uuid and t.revoked_at is null
          and (t.expires_at is null or t.expires_at > now()))`),
  );
  return rows.map((r) => r.id);
}
