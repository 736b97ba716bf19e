import { and, desc, eq, gte, lt, sql } from "drizzle-orm";
import type { Executor } from "./client.ts";
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
  page: { offset: number; limit: number },
): Promise<{ rows: AuditRow[]; total: number }> {
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
      .select()
      .from(auditEvents)
      .where(where)
      .orderBy(desc(auditEvents.time), desc(auditEvents.id))
      .offset(page.offset)
      .limit(page.limit),
    ex
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(auditEvents)
      .where(where),
  ]);
  return { rows, total: count?.n ?? 0 };
}
