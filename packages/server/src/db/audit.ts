import { and, eq, getTableColumns, gte, lt, type SQL, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { type KeyValue, type PageWindow, readPage } from "./keyset.ts";
import { type AuditRow, auditEvents } from "./schema.ts";

export interface AuditFilter {
  projectId?: string;
  secretId?: string;
  tokenId?: string;
  method?: string;
  outcome?: string;
  /** Inclusive. */
  start?: Date;
  /** Exclusive. */
  end?: Date;
}

/**
 * Audit events, newest first (then by id, so pages are stable), with the
 * total. Every filter is an equality or a range on an indexed column.
 */
export async function listAuditEvents(
  ex: Executor,
  f: AuditFilter,
  page: PageWindow,
): Promise<{ rows: AuditRow[]; total: number; next?: KeyValue[] }> {
  const where = and(
    f.projectId === undefined ? undefined : eq(auditEvents.projectId, f.projectId),
    f.secretId === undefined ? undefined : eq(auditEvents.secretId, f.secretId),
    f.tokenId === undefined ? undefined : eq(auditEvents.tokenId, f.tokenId),
    f.method === undefined ? undefined : eq(auditEvents.method, f.method),
    f.outcome === undefined ? undefined : eq(auditEvents.outcome, f.outcome),
    f.start === undefined ? undefined : gte(auditEvents.time, f.start),
    f.end === undefined ? undefined : lt(auditEvents.time, f.end),
  );
  return readPage(
    ex,
    {
      fields: getTableColumns(auditEvents),
      table: auditEvents,
      where,
      sort: {
        columns: [auditEvents.time, auditEvents.id],
        kinds: ["ts", "uuid"],
        direction: "desc",
      },
    },
    page,
  );
}

/** An audit event as it is inserted; the database fills in `time` and `count` when absent. */
export type NewAuditEvent = typeof auditEvents.$inferInsert;

/** The one insert of audit events from the application; a call with none writes nothing. */
export async function insertAuditEvents(ex: Executor, events: NewAuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  await ex.insert(auditEvents).values(events);
}

/** The parts of a call's OK event that a statement writing the event itself takes. */
export interface StatementAudit {
  id: string;
  tokenId: string | null;
  method: string;
  requestId: string;
  peer: string | null;
}

/**
 * The OK event of a call, inserted by the statement that does the call's
 * work (so the event and the change commit or fail as one, in one round
 * trip): a CTE body over `from`, naming the secret by the row `secret` of
 * `secrets` and the revision by `revision`. It writes only when the call has
 * an audit record (the `auditId` placeholder, see statementAuditValues) and
 * `when` holds.
 */
export function okEventInsert(secret: string, revision: SQL, from: SQL, when: SQL): SQL {
  if (!/^[a-z_][a-z0-9_]*$/.test(secret)) throw new Error(`not a plain SQL alias: ${secret}`);
  const s = sql.raw(secret);
  const p = (name: string) => sql.placeholder(name);
  return sql`insert into audit_events
    (id, token_id, project_id, method, secret_id, secret_path, secret_name, revision, outcome, request_id, peer)
  select ${p("auditId")}::uuid, ${p("tokenId")}::uuid, ${s}.project_id, ${p("method")}::text,
    ${s}.id, ${s}.path, ${s}.name, ${revision}, 'OK', ${p("requestId")}::text, ${p("peer")}::text
  from ${from}
  where ${p("auditId")}::uuid is not null and ${when}
  returning 1`;
}

/** The placeholder values okEventInsert reads; all null without an audit record. */
export function statementAuditValues(audit: StatementAudit | undefined): Record<string, unknown> {
  return {
    auditId: audit?.id ?? null,
    tokenId: audit?.tokenId ?? null,
    method: audit?.method ?? null,
    requestId: audit?.requestId ?? null,
    peer: audit?.peer ?? null,
  };
}
