import { and, desc, eq, getTableColumns, inArray, type SQL, sql } from "drizzle-orm";
import type { PgInsertValue, PgUpdateSetSource } from "drizzle-orm/pg-core";
import type { Executor } from "./client.ts";
import { type KeyValue, type PageWindow, readPage } from "./keyset.ts";
import { secrets, secretVersions, type VersionRow } from "./schema.ts";
import { servableIn } from "./version-rules.ts";

/**
 * Version metadata: everything but the key material, the ciphertext and the
 * payload's checksum. The checksum travels only with the payload (access):
 * the CRC-32 of a short secret (a PIN, an OTP) reveals it to anyone who may
 * read metadata.
 */
export type VersionMeta = Omit<VersionRow, "keyId" | "wrappedKey" | "ciphertext" | "dataCrc32">;

const {
  keyId: _k,
  wrappedKey: _w,
  ciphertext: _c,
  dataCrc32: _crc,
  ...metaColumns
} = getTableColumns(secretVersions);

/**
 * A version's status as a reader must see it: an enabled version past its
 * `expires_at` already has the status its action gives (`disabled`, or
 * `deleted` for `delete`), whether or not the sweeper has applied it yet.
 * Every reader of version metadata (get, list and its status filter, the
 * state changes, the watch trigger) goes through this one expression, so
 * that nothing reports ENABLED for a version that access refuses.
 */
export const effectiveStatus: SQL<string> = sql<string>`(case when ${secretVersions.status} = 'enabled' and ${secretVersions.expiresAt} <= now() then (case when ${secretVersions.ephemeralAction} = 'delete' then 'deleted' else 'disabled' end) else ${secretVersions.status} end)`;

/** Version metadata plus `latest`: whether it holds the secret's highest revision. */
const versionView = {
  ...metaColumns,
  status: effectiveStatus.as("status"),
  // An expired `delete` version reports its payload destroyed from its expiry.
  deletedAt:
    sql<Date | null>`(case when ${secretVersions.deletedAt} is null and ${secretVersions.status} = 'enabled' and ${secretVersions.expiresAt} <= now() and ${secretVersions.ephemeralAction} = 'delete' then ${secretVersions.expiresAt} else ${secretVersions.deletedAt} end)`
      .mapWith(secretVersions.deletedAt)
      .as("deleted_at"),
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

/** The servable rule (version-rules.ts) for queries that select from `secret_versions` itself. */
const servable = servableIn("secret_versions");

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

export async function listVersions(
  ex: Executor,
  secretId: string,
  statuses: string[],
  page: PageWindow,
): Promise<{ rows: (VersionMeta & { latest: boolean })[]; total: number; next?: KeyValue[] }> {
  return readPage(
    ex,
    {
      fields: versionView,
      table: secretVersions,
      where: and(eq(secretVersions.secretId, secretId), inArray(effectiveStatus, statuses)),
      sort: { columns: [secretVersions.revision], kinds: ["int"], direction: "desc" },
    },
    page,
  );
}

/** A new version as CreateSecretVersion stores it. */
export interface NewVersion {
  secretId: string;
  revision: number;
  status: "enabled" | "disabled";
  description: string;
  dataCrc32: number;
  keyId: string;
  wrappedKey: Uint8Array;
  ciphertext: Uint8Array;
  /** From the secret's ephemeral policy; null when it has none. */
  ttlMs: number | null;
  expiresOnceAccessed: boolean | null;
  ephemeralAction: string | null;
}

/** A version as the create statement returns it (db/versions-batch.ts). */
export interface InsertedRow {
  secret_id: string;
  revision: number;
  status: string;
  description: string;
  expires_at: string | null;
  expires_once_accessed: boolean | null;
  ephemeral_action: string | null;
  created_at: string;
  updated_at: string;
  /** The secret's generation and kept-version count once the version is written. */
  secret_generation: string;
  secret_kept_versions: number;
}

/** The metadata of a version just created, from the row its statement returned. */
export function insertedVersion(row: InsertedRow): VersionMeta & { latest: boolean } {
  const date = (t: string | null) => (t === null ? null : new Date(t));
  return {
    secretId: row.secret_id,
    revision: row.revision,
    status: row.status,
    description: row.description,
    expiresAt: date(row.expires_at),
    expiresOnceAccessed: row.expires_once_accessed,
    ephemeralAction: row.ephemeral_action,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    deletionRequestedAt: null,
    deletedAt: null,
    consumedAt: null,
    latest: true,
  };
}
