import { and, desc, eq, getTableColumns, inArray, type SQL, sql } from "drizzle-orm";
import { alias, type PgInsertValue, type PgUpdateSetSource } from "drizzle-orm/pg-core";
import type { Executor } from "./client.ts";
import { secrets, secretVersions, type VersionRow } from "./schema.ts";

/** Version metadata: everything but the key material and ciphertext. */
export type VersionMeta = Omit<VersionRow, "keyId" | "wrappedKey" | "ciphertext">;

const {
  keyId: _k,
  wrappedKey: _w,
  ciphertext: _c,
  ...metaColumns
} = getTableColumns(secretVersions);

/** Version metadata plus `latest`: whether it holds the secret's highest revision. */
const versionView = {
  ...metaColumns,
  latest:
    sql<boolean>`${secretVersions.revision} = (select ${secrets.lastRevision} from ${secrets} where ${secrets.id} = ${secretVersions.secretId})`.as(
      "latest",
    ),
};

/** The sealed payload of a version, as stored. */
export interface SealedRow {
  revision: number;
  dataCrc32: number;
  keyId: string | null;
  wrappedKey: Uint8Array | null;
  ciphertext: Uint8Array | null;
}

export type RevisionRef =
  | { kind: "number"; revision: number }
  | { kind: "latest" }
  | { kind: "latest_enabled" };

/**
 * Enabled and not past its expiry: the only versions that may be served.
 * Expiry is checked here, not left to the sweeper, so that an expired version
 * is never served even before the sweeper applies its action.
 */
export const servable: SQL = sql`(${secretVersions.status} = 'enabled' and (${secretVersions.expiresAt} is null or ${secretVersions.expiresAt} > now()))`;

function revisionWhere(
  secretId: string,
  ref: RevisionRef,
): { where: SQL | undefined; order: boolean } {
  const bySecret = eq(secretVersions.secretId, secretId);
  switch (ref.kind) {
    case "number":
      return { where: and(bySecret, eq(secretVersions.revision, ref.revision)), order: false };
    case "latest":
      return { where: bySecret, order: true };
    case "latest_enabled":
      return { where: and(bySecret, servable), order: true };
  }
}

/** A version's metadata by revision selector, or undefined. */
export async function findVersion(
  ex: Executor,
  secretId: string,
  ref: RevisionRef,
): Promise<(VersionMeta & { latest: boolean }) | undefined> {
  const { where, order } = revisionWhere(secretId, ref);
  const q = ex.select(versionView).from(secretVersions).where(where);
  const [row] = await (order ? q.orderBy(desc(secretVersions.revision)).limit(1) : q);
  return row;
}

/** The sealed payload of a servable version, or undefined when it cannot be served. */
export async function findServable(
  ex: Executor,
  secretId: string,
  revision: number,
): Promise<(SealedRow & { expiresOnceAccessed: boolean | null }) | undefined> {
  const [row] = await ex
    .select({
      revision: secretVersions.revision,
      dataCrc32: secretVersions.dataCrc32,
      keyId: secretVersions.keyId,
      wrappedKey: secretVersions.wrappedKey,
      ciphertext: secretVersions.ciphertext,
      expiresOnceAccessed: secretVersions.expiresOnceAccessed,
    })
    .from(secretVersions)
    .where(
      and(eq(secretVersions.secretId, secretId), eq(secretVersions.revision, revision), servable),
    );
  return row;
}

/**
 * Consumes a single-access version and returns its payload, in one statement.
 * The row lock taken by the UPDATE and Postgres's re-check of the WHERE
 * clause after a concurrent commit make exactly one caller win, across any
 * number of replicas; the others get undefined. The payload is read from the
 * pre-update row (`before`), so the `delete` action can destroy it in the same
 * statement.
 */
export async function consumeVersion(
  ex: Executor,
  secretId: string,
  revision: number,
): Promise<SealedRow | undefined> {
  const before = alias(secretVersions, "before");
  const destroy = sql`${secretVersions.ephemeralAction} = 'delete'`;
  const [row] = await ex
    .update(secretVersions)
    .set({
      status: sql`case when ${destroy} then 'deleted' else 'disabled' end`,
      consumedAt: sql`now()`,
      updatedAt: sql`now()`,
      deletedAt: sql`case when ${destroy} then now() else null end`,
      keyId: sql`case when ${destroy} then null else ${secretVersions.keyId} end`,
      wrappedKey: sql`case when ${destroy} then null else ${secretVersions.wrappedKey} end`,
      ciphertext: sql`case when ${destroy} then null else ${secretVersions.ciphertext} end`,
    })
    .from(before)
    .where(
      and(
        eq(before.secretId, secretVersions.secretId),
        eq(before.revision, secretVersions.revision),
        eq(secretVersions.secretId, secretId),
        eq(secretVersions.revision, revision),
        eq(secretVersions.expiresOnceAccessed, true),
        servable,
      ),
    )
    .returning({
      revision: before.revision,
      dataCrc32: before.dataCrc32,
      keyId: before.keyId,
      wrappedKey: before.wrappedKey,
      ciphertext: before.ciphertext,
    });
  return row;
}

/**
 * Undoes a consumption made at `consumedAt` (as the database wrote it, to the
 * microsecond), putting the sealed payload back: for a served payload that
 * then failed to decrypt, so that a tampered or misplaced row, once repaired,
 * can still be read once. Only the row as that consumption left it matches.
 */
export async function unconsumeVersion(
  ex: Executor,
  secretId: string,
  consumedAt: string,
  sealed: SealedRow,
): Promise<boolean> {
  const rows = await ex
    .update(secretVersions)
    .set({
      status: "enabled",
      consumedAt: null,
      deletedAt: null,
      updatedAt: sql`now()`,
      keyId: sealed.keyId,
      wrappedKey: sealed.wrappedKey,
      ciphertext: sealed.ciphertext,
    })
    .where(
      and(
        eq(secretVersions.secretId, secretId),
        eq(secretVersions.revision, sealed.revision),
        sql`${secretVersions.consumedAt} = ${consumedAt}::timestamptz`,
        inArray(secretVersions.status, ["disabled", "deleted"]),
      ),
    )
    .returning({ revision: secretVersions.revision });
  return rows.length > 0;
}

export async function insertVersion(
  ex: Executor,
  row: PgInsertValue<typeof secretVersions>,
): Promise<void> {
  await ex.insert(secretVersions).values(row);
}

/** Changes one version; returns false when no row matched `where`. */
export async function updateVersion(
  ex: Executor,
  secretId: string,
  revision: number,
  set: PgUpdateSetSource<typeof secretVersions>,
  where?: SQL,
): Promise<boolean> {
  const rows = await ex
    .update(secretVersions)
    .set({ ...set, updatedAt: sql`now()` })
    .where(and(eq(secretVersions.secretId, secretId), eq(secretVersions.revision, revision), where))
    .returning({ revision: secretVersions.revision });
  return rows.length > 0;
}

/** Disables the highest servable version, if any; returns its revision. */
export async function disableLatestEnabled(
  ex: Executor,
  secretId: string,
): Promise<number | undefined> {
  const latest = await findVersion(ex, secretId, { kind: "latest_enabled" });
  if (latest === undefined) return undefined;
  await updateVersion(ex, secretId, latest.revision, { status: "disabled" });
  return latest.revision;
}

export async function listVersions(
  ex: Executor,
  secretId: string,
  statuses: string[],
  page: { offset: number; limit: number },
): Promise<{ rows: (VersionMeta & { latest: boolean })[]; total: number }> {
  const where = and(
    eq(secretVersions.secretId, secretId),
    inArray(secretVersions.status, statuses),
  );
  const [rows, [count]] = await Promise.all([
    ex
      .select(versionView)
      .from(secretVersions)
      .where(where)
      .orderBy(desc(secretVersions.revision))
      .offset(page.offset)
      .limit(page.limit),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(secretVersions)
      .where(where),
  ]);
  return { rows, total: count?.n ?? 0 };
}

/** The number of a secret's versions whose payload is not destroyed (status other than `deleted`). */
export async function countKeptVersions(ex: Executor, secretId: string): Promise<number> {
  const [row] = await ex
    .select({ n: sql<number>`count(*)`.mapWith(Number) })
    .from(secretVersions)
    .where(and(eq(secretVersions.secretId, secretId), sql`${secretVersions.status} <> 'deleted'`));
  return row?.n ?? 0;
}
