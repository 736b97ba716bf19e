import { and, asc, count, isNotNull, ne, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { rowsOf } from "./raw-sql.ts";
import { secretVersions } from "./schema.ts";

/** Where a key-rotation scan stands: the last version it read. */
export interface VersionCursor {
  secretId: string;
  revision: number;
}

/** A version's wrapped data key, as a key rotation reads it. */
export interface WrappedKeyRow extends VersionCursor {
  keyId: string;
  wrappedKey: Uint8Array;
}

/** A wrapped data key to replace, and what it must still be for the change to apply. */
export interface WrappedKeyChange {
  before: WrappedKeyRow;
  keyId: string;
  wrappedKey: Uint8Array;
}

/** Rows per master key other than `activeId` that still hold a wrapped data key. */
export async function countWrappedOutside(
  ex: Executor,
  activeId: string,
): Promise<{ keyId: string; rows: number }[]> {
  const rows = await ex
    .select({ keyId: secretVersions.keyId, rows: count() })
    .from(secretVersions)
    .where(and(ne(secretVersions.keyId, activeId), isNotNull(secretVersions.wrappedKey)))
    .groupBy(secretVersions.keyId)
    .orderBy(asc(secretVersions.keyId));
  return rows.flatMap((r) => (r.keyId === null ? [] : [{ keyId: r.keyId, rows: Number(r.rows) }]));
}

/**
 * The next `limit` versions after `after`, in primary key order, whose data
 * key is wrapped with a master key other than `activeId`. Destroyed versions
 * (no wrapped key) are skipped. The payload ciphertext is not read.
 */
export async function nextWrappedOutside(
  ex: Executor,
  activeId: string,
  after: VersionCursor | undefined,
  limit: number,
): Promise<WrappedKeyRow[]> {
  const rows = await ex
    .select({
      secretId: secretVersions.secretId,
      revision: secretVersions.revision,
      keyId: secretVersions.keyId,
      wrappedKey: secretVersions.wrappedKey,
    })
    .from(secretVersions)
    .where(
      and(
        ne(secretVersions.keyId, activeId),
        isNotNull(secretVersions.wrappedKey),
        after === undefined
          ? undefined
          : sql`(${secretVersions.secretId}, ${secretVersions.revision}) > (${after.secretId}::uuid, ${after.revision}::integer)`,
      ),
    )
    .orderBy(asc(secretVersions.secretId), asc(secretVersions.revision))
    .limit(limit);
  return rows.flatMap((r) =>
    r.keyId === null || r.wrappedKey === null
      ? []
      : [{ secretId: r.secretId, revision: r.revision, keyId: r.keyId, wrappedKey: r.wrappedKey }],
  );
}

/**
 * Replaces wrapped data keys in one statement, each only where the row still
 * holds exactly the key id and wrapped key it was read with. A version
 * destroyed or rewrapped meanwhile is left as it now is: the change never
 * overwrites a concurrent one. Neither the ciphertext nor `updated_at` nor
 * the secret's generation change: the payload, as callers see it, is the same.
 * Returns how many rows were changed.
 */
export async function replaceWrappedKeys(
  ex: Executor,
  changes: readonly WrappedKeyChange[],
): Promise<number> {
  if (changes.length === 0) return 0;
  const values = sql.join(
    changes.map(
      (c) =>
        sql`(${c.before.secretId}::uuid, ${c.before.revision}::integer, ${c.before.keyId}::text, ${c.before.wrappedKey}::bytea, ${c.keyId}::text, ${c.wrappedKey}::bytea)`,
    ),
    sql`, `,
  );
  const [row] = rowsOf<{ n: number }>(
    await ex.execute(sql`with changed as (
      update secret_versions v set key_id = x.new_key_id, wrapped_key = x.new_wrapped_key
      from (values ${values}) as x(secret_id, revision, old_key_id, old_wrapped_key, new_key_id, new_wrapped_key)
      where v.secret_id = x.secret_id and v.revision = x.revision
        and v.key_id = x.old_key_id and v.wrapped_key = x.old_wrapped_key
      returning 1
    )
    select count(*)::int as n from changed`),
  );
  return Number(row?.n ?? 0);
}
