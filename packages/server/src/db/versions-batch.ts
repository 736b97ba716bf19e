import { type SQL, sql } from "drizzle-orm";
import type { StatementAudit } from "./audit.ts";
import type { Executor } from "./client.ts";
import { executeRendered, render, rowsOf } from "./raw-sql.ts";
import { expiresIn, servableIn } from "./version-rules.ts";
import type { InsertedRow, NewVersion } from "./versions.ts";

/**
 * Several creates of versions in one transaction (domain/create-batch.ts):
 * the secrets are locked together (lockFreeSecrets, db/secrets.ts), then every version is written by one
 * statement, so that a batch pays one BEGIN, one lock, one write and one
 * COMMIT, however many callers it serves.
 */

/** One version of a batch, and how its call is written. */
export interface BatchedVersion {
  version: NewVersion;
  disablePrevious: boolean;
  audit: StatementAudit | undefined;
}

/**
 * Writes a batch of versions, each of a different secret whose row the
 * transaction holds (lockFreeSecrets), in one statement: for each, what
 * insertVersionWithEvent does for one (disable the latest enabled version
 * when asked, insert, move the secret's last revision and etag, and write
 * the call's audit event). Returns the inserted rows,
 * in no particular order.
 *
 * The statement's text depends only on the batch's size: it runs as a named
 * statement, which postgres-js prepares once per text and connection, so
 * Postgres parses and plans it once per batch size.
 */
export async function insertVersionsWithEvents(
  ex: Executor,
  batch: BatchedVersion[],
): Promise<InsertedRow[]> {
  const rows = batch.map(({ version: v, disablePrevious, audit }): SQL => {
    return sql`(${v.secretId}::uuid, ${v.revision}::int, ${v.status}::text, ${v.description}::text,
      ${v.dataCrc32}::bigint, ${v.keyId}::text, ${v.wrappedKey}::bytea, ${v.ciphertext}::bytea,
      ${v.ttlMs}::bigint, ${v.expiresOnceAccessed}::boolean, ${v.ephemeralAction}::text,
      ${disablePrevious}::boolean, ${audit?.id ?? null}::uuid, ${audit?.tokenId ?? null}::uuid,
      ${audit?.method ?? null}::text, ${audit?.requestId ?? null}::text, ${audit?.peer ?? null}::text)`;
  });
  const statement = sql`with input (secret_id, revision, status, description,
    data_crc32, key_id, wrapped_key, ciphertext, ttl_ms, once, action, disable_previous,
    audit_id, token_id, method, request_id, peer) as (
  values ${sql.join(rows, sql`, `)}
),
prev as (
  update secret_versions v set status = 'disabled', updated_at = now()
  from input i
  where i.disable_previous and v.secret_id = i.secret_id
    and v.revision = (
      select w.revision from secret_versions w
      where w.secret_id = i.secret_id and ${servableIn("w")}
      order by w.revision desc limit 1)
  returning v.secret_id
),
ins as (
  insert into secret_versions (secret_id, revision, status, description, data_crc32, key_id,
    wrapped_key, ciphertext, expires_at, expires_once_accessed, ephemeral_action)
  select i.secret_id, i.revision, i.status, i.description, i.data_crc32, i.key_id,
    i.wrapped_key, i.ciphertext, ${expiresIn(sql.raw("i.ttl_ms"))}, i.once, i.action
  from input i, (select count(*) from prev) as disabled_first
  returning secret_id, revision, status, description, expires_at::text, expires_once_accessed,
    ephemeral_action, created_at::text, updated_at::text
),
up as (
  update secrets s set last_revision = i.revision, generation = s.generation + 1, updated_at = now()
  from input i where s.id = i.secret_id
  returning 1
),
a as (
  insert into audit_events
    (id, token_id, project_id, method, secret_id, secret_path, secret_name, revision, outcome, request_id, peer)
  select i.audit_id, i.token_id, s.project_id, i.method, s.id, s.path, s.name, i.revision, 'OK',
    i.request_id, i.peer
  from input i join secrets s on s.id = i.secret_id
  where i.audit_id is not null
  returning 1
)
select ins.* from ins`;
  const name = `coffer_create_versions_${batch.length}`;
  return rowsOf<InsertedRow>(await executeRendered(ex, render(statement), name, {}));
}
