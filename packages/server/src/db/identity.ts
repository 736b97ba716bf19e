import { and, asc, eq, getTableColumns, inArray, isNull, type SQL, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { type KeyValue, type PageWindow, readPage } from "./keyset.ts";
import { rowsOf } from "./raw-sql.ts";
import {
  type IdentityBindingRow,
  identityBindings,
  type TokenRow,
  type TrustedIssuerRow,
  tokens,
  trustedIssuers,
} from "./schema.ts";

/** Trusted issuers and identity bindings (home region), and the tokens exchanged through them. */

export type NewTrustedIssuer = typeof trustedIssuers.$inferInsert;
export type NewIdentityBinding = typeof identityBindings.$inferInsert;

/** Inserts an issuer; a name or issuer URL in use fails with 23505. */
export async function insertIssuer(ex: Executor, row: NewTrustedIssuer): Promise<TrustedIssuerRow> {
  const [inserted] = await ex.insert(trustedIssuers).values(row).returning();
  if (inserted === undefined) throw new Error("insert into trusted_issuers returned no row");
  return inserted;
}

export async function findIssuer(ex: Executor, id: string): Promise<TrustedIssuerRow | undefined> {
  const [row] = await ex.select().from(trustedIssuers).where(eq(trustedIssuers.id, id));
  return row;
}

/**
 * An issuer, locked until the transaction ends: FOR UPDATE by its delete,
 * FOR SHARE by a binding's creation, so that a binding is never created for
 * an issuer being deleted (it waits, then finds none).
 */
export async function lockIssuer(
  ex: Executor,
  id: string,
  mode: "update" | "share",
): Promise<TrustedIssuerRow | undefined> {
  const [row] = await ex.select().from(trustedIssuers).where(eq(trustedIssuers.id, id)).for(mode);
  return row;
}

/** The issuer whose `iss` is exactly this (issuer URLs are unique). */
export async function findIssuerByUrl(
  ex: Executor,
  issuerUrl: string,
): Promise<TrustedIssuerRow | undefined> {
  const [row] = await ex
    .select()
    .from(trustedIssuers)
    .where(eq(trustedIssuers.issuerUrl, issuerUrl));
  return row;
}

/** Issuers, by name (then id), with the total. */
export async function listIssuers(
  ex: Executor,
  page: PageWindow,
): Promise<{ rows: TrustedIssuerRow[]; total: number; next?: KeyValue[] }> {
  return readPage(
    ex,
    {
      fields: getTableColumns(trustedIssuers),
      table: trustedIssuers,
      where: undefined,
      sort: {
        columns: [trustedIssuers.name, trustedIssuers.id],
        kinds: ["text", "uuid"],
        direction: "asc",
      },
    },
    page,
  );
}

/**
 * Sets an issuer's columns (never its id or issuer URL); undefined when there
 * is none. A name in use fails with 23505.
 */
export async function updateIssuerRow(
  ex: Executor,
  id: string,
  set: Partial<
    Pick<TrustedIssuerRow, "name" | "audiences" | "keySource" | "jwksUrl" | "staticJwks">
  >,
): Promise<TrustedIssuerRow | undefined> {
  const [row] = await ex
    .update(trustedIssuers)
    .set(set)
    .where(eq(trustedIssuers.id, id))
    .returning();
  return row;
}

/** Deletes an issuer (its bindings go with it, by cascade); undefined when there was none. */
export async function deleteIssuerRow(
  ex: Executor,
  id: string,
): Promise<TrustedIssuerRow | undefined> {
  const [row] = await ex.delete(trustedIssuers).where(eq(trustedIssuers.id, id)).returning();
  return row;
}

export async function insertBinding(
  ex: Executor,
  row: NewIdentityBinding,
): Promise<IdentityBindingRow> {
  const [inserted] = await ex.insert(identityBindings).values(row).returning();
  if (inserted === undefined) throw new Error("insert into identity_bindings returned no row");
  return inserted;
}

/**
 * A binding, locked until the transaction ends: FOR UPDATE by a delete, FOR
 * SHARE by an exchange (which must not issue a token from a binding being
 * deleted); undefined once deleted.
 */
export async function lockBinding(
  ex: Executor,
  id: string,
  mode: "update" | "share",
): Promise<IdentityBindingRow | undefined> {
  const [row] = await ex
    .select()
    .from(identityBindings)
    .where(eq(identityBindings.id, id))
    .for(mode);
  return row;
}

/** Every binding of an issuer, by id: what an exchange matches against. */
export async function bindingsOfIssuer(
  ex: Executor,
  issuerId: string,
): Promise<IdentityBindingRow[]> {
  return ex
    .select()
    .from(identityBindings)
    .where(eq(identityBindings.issuerId, issuerId))
    .orderBy(asc(identityBindings.id));
}

export interface BindingFilter {
  issuerId?: string;
  /** Only bindings with at least one grant on this project. */
  projectId?: string;
  /** Only bindings whose every grant is on one of these projects (a global admin grant never is). */
  within?: readonly string[];
}

function bindingFilterSql(f: BindingFilter): SQL | undefined {
  const grants = identityBindings.grants;
  return and(
    f.issuerId === undefined ? undefined : eq(identityBindings.issuerId, f.issuerId),
    f.projectId === undefined
      ? undefined
      : sql`${grants} @> ${JSON.stringify([{ projectId: f.projectId }])}::jsonb`,
    f.within === undefined
      ? undefined
      : sql`not exists (select 1 from jsonb_array_elements(${grants}) g where not (g->>'projectId' in (select jsonb_array_elements_text(${JSON.stringify(f.within)}::jsonb))))`,
  );
}

/** Bindings, by name (then id), with the total. */
export async function listBindings(
  ex: Executor,
  filter: BindingFilter,
  page: PageWindow,
): Promise<{ rows: IdentityBindingRow[]; total: number; next?: KeyValue[] }> {
  return readPage(
    ex,
    {
      fields: getTableColumns(identityBindings),
      table: identityBindings,
      where: bindingFilterSql(filter),
      sort: {
        columns: [identityBindings.name, identityBindings.id],
        kinds: ["text", "uuid"],
        direction: "asc",
      },
    },
    page,
  );
}

/** Deletes bindings by id; returns the rows deleted. */
export async function deleteBindingRows(
  ex: Executor,
  ids: readonly string[],
): Promise<IdentityBindingRow[]> {
  if (ids.length === 0) return [];
  return ex
    .delete(identityBindings)
    .where(inArray(identityBindings.id, [...ids]))
    .returning();
}

/** The bindings of an issuer, locked FOR UPDATE (its delete). */
export async function lockBindingsOfIssuer(
  ex: Executor,
  issuerId: string,
): Promise<IdentityBindingRow[]> {
  return ex
    .select()
    .from(identityBindings)
    .where(eq(identityBindings.issuerId, issuerId))
    .orderBy(asc(identityBindings.id))
    .for("update");
}

/**
 * Revokes every token exchanged through these bindings that is not revoked
 * yet, and returns them. An exchange holds its binding FOR SHARE while it
 * inserts its token (lockBindingShared), so a delete that locked the binding
 * sees every token made through it.
 */
export async function revokeTokensOfBindings(
  ex: Executor,
  bindingIds: readonly string[],
): Promise<TokenRow[]> {
  if (bindingIds.length === 0) return [];
  return ex
    .update(tokens)
    .set({ revokedAt: sql`now()` })
    .where(and(inArray(tokens.bindingId, [...bindingIds]), isNull(tokens.revokedAt)))
    .returning();
}

/**
 * Deletes up to `batch` exchanged tokens (issuer set) that expired more than
 * `retentionMs` ago and created no token (a creator's row is kept: its
 * children point at it), in one short statement; returns how many. Their
 * audit events stay: they name the token by id.
 */
export async function pruneExchangedTokens(
  ex: Executor,
  retentionMs: number,
  batch: number,
): Promise<number> {
  const [row] = rowsOf<{ n: number }>(
    await ex.execute(sql`with picked as (
      select t.id from tokens t
      where t.issuer is not null
        and t.expires_at < now() - ${retentionMs} * interval '1 millisecond'
        and not exists (select 1 from tokens c where c.created_by = t.id)
      order by t.expires_at
      limit ${batch} for update of t skip locked
    ), gone as (
      delete from tokens x using picked p where x.id = p.id returning 1
    )
    select count(*)::int as n from gone`),
  );
  return Number(row?.n ?? 0);
}

/**
 * Removes every grant on a project from every binding (the project is being
 * deleted), and deletes the bindings left with none; returns how many were
 * deleted. Their tokens lose the same grants by removeProjectGrants.
 */
export async function removeProjectFromBindings(ex: Executor, projectId: string): Promise<number> {
  await ex.execute(sql`
    update ${identityBindings} set
      grants = coalesce(
        (select jsonb_agg(g) from jsonb_array_elements(${identityBindings.grants}) g where g->>'projectId' <> ${projectId}),
        '[]'::jsonb)
    where ${identityBindings.grants} @> jsonb_build_array(jsonb_build_object('projectId', ${projectId}::text))`);
  const gone = await ex
    .delete(identityBindings)
    .where(sql`${identityBindings.grants} = '[]'::jsonb`)
    .returning({ id: identityBindings.id });
  return gone.length;
}
