import { and, desc, eq, getTableColumns, gte, lt, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
import { afterKey, cutPage, type KeyValue, microsText, type PageWindow } from "./keyset.ts";
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
  const [rows, [count]] = await Promise.all([
    ex
      .select({ ...getTableColumns(auditEvents), timeKey: microsText(auditEvents.time) })
      .from(auditEvents)
      .where(
        page.after === undefined
          ? where
          : and(
              where,
              afterKey([auditEvents.time, auditEvents.id], ["ts", "uuid"], page.after, "desc"),
            ),
      )
      .orderBy(desc(auditEvents.time), desc(auditEvents.id))
      .offset(page.offset)
      .limit(page.limit + 1),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(auditEvents)
      .where(where),
  ]);
  const cut = cutPage(rows, page.limit, (r) => [r.timeKey, r.id]);
  return {
    rows: cut.rows.map(({ timeKey: _, ...row }) => row),
    total: count?.n ?? 0,
    ...(cut.next && { next: cut.next }),
  };
}
