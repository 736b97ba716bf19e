import { eq } from "drizzle-orm";
import { insertAuditEvents, type NewAuditEvent, type StatementAudit } from "../db/audit.ts";
import type { Executor } from "../db/client.ts";
import { timeOrderedUuid } from "../db/ids.ts";
import { auditEvents, type SecretRow } from "../db/schema.ts";
import type { DomainDeps } from "./context.ts";

/** What the domain learns about a call as it runs, for its audit event. */
export interface AuditFacts {
  projectId?: string;
  secretId?: string;
  secretPath?: string;
  secretName?: string;
  revision?: number;
  /** The token a token-management call created or revoked, or the token an exchange issued. */
  targetTokenId?: string;
  /** For ExchangeToken: the JWT's issuer and subject, the binding that matched. */
  issuer?: string;
  subject?: string;
  bindingId?: string;
  /** For a refused ExchangeToken: why (the caller is not told). */
  reason?: string;
}

/**
 * The audit record of one call. The call chain creates it; domain functions
 * fill in facts and the region as they learn them, and write the event inside
 * their own transaction when the call changes or reveals something (a
 * mutation, a payload read). Every other call's event is written by the chain
 * when the call ends, allowed or denied.
 */
export interface CallAudit {
  id: string;
  method: string;
  requestId: string;
  peer?: string;
  tokenId?: string;
  /** The region whose database gets the event; "" until the request's region is known. */
  region: string;
  facts: AuditFacts;
  /** Set once the event is in the database. */
  written: boolean;
}

export function newCallAudit(method: string, requestId: string, peer?: string): CallAudit {
  return {
    id: timeOrderedUuid(),
    method,
    requestId,
    ...(peer && { peer }),
    region: "",
    facts: {},
    written: false,
  };
}

/** Adds facts to the call's audit event (the chain writes it for calls that change nothing). */
export function noteFacts(audit: CallAudit | undefined, facts: AuditFacts): void {
  if (audit) Object.assign(audit.facts, facts);
}

/** The facts that name a secret in an audit event. */
export function secretFacts(
  secret: Pick<SecretRow, "id" | "projectId" | "path" | "name">,
): AuditFacts {
  return {
    projectId: secret.projectId,
    secretId: secret.id,
    secretPath: secret.path,
    secretName: secret.name,
  };
}

/** The event as stored and as sent to the audit log. */
export function auditRow(audit: CallAudit, outcome: string): NewAuditEvent {
  const f = audit.facts;
  return {
    id: audit.id,
    tokenId: audit.tokenId ?? null,
    projectId: f.projectId ?? null,
    method: audit.method,
    secretId: f.secretId ?? null,
    secretPath: f.secretPath ?? null,
    secretName: f.secretName ?? null,
    revision: f.revision ?? null,
    outcome,
    requestId: audit.requestId,
    peer: audit.peer ?? null,
    targetTokenId: f.targetTokenId ?? null,
    issuer: f.issuer ?? null,
    subject: f.subject ?? null,
    bindingId: f.bindingId ?? null,
    reason: f.reason ?? null,
  };
}

/**
 * Writes the call's event with outcome OK inside the caller's transaction:
 * if the transaction rolls back, so does the event, and the chain then
 * writes the failure instead.
 */
export async function recordInTransaction(
  tx: Executor,
  audit: CallAudit | undefined,
  facts: AuditFacts,
): Promise<void> {
  if (audit === undefined) return;
  Object.assign(audit.facts, facts);
  await insertAuditEvents(tx, [auditRow(audit, "OK")]);
  audit.written = true;
}

/**
 * The parts of the call's OK event that a statement writing it itself needs
 * (the access path inserts the event in the statement that serves the
 * payload; the facts come from the rows it reads). Undefined without an
 * audit record.
 */
export function auditParams(audit: CallAudit | undefined): StatementAudit | undefined {
  if (audit === undefined) return undefined;
  return {
    id: audit.id,
    tokenId: audit.tokenId ?? null,
    method: audit.method,
    requestId: audit.requestId,
    peer: audit.peer ?? null,
  };
}

/**
 * Notes that a statement wrote the call's OK event (built from auditParams
 * and these facts, as auditRow would), so the chain writes no second one
 * and logs the same facts.
 */
export function markRecorded(audit: CallAudit | undefined, facts: AuditFacts): void {
  if (audit === undefined) return;
  Object.assign(audit.facts, facts);
  audit.written = true;
}

/**
 * Takes back an OK event that a statement wrote for a call that then failed
 * (a payload that would not decrypt after it was served from the database):
 * the chain then writes the failure, as it does when a transaction holding
 * the event rolls back.
 */
export async function retractRecorded(ex: Executor, audit: CallAudit | undefined): Promise<void> {
  if (audit === undefined || !audit.written) return;
  await ex.delete(auditEvents).where(eq(auditEvents.id, audit.id));
  audit.written = false;
}

/**
 * For a failed call: makes sure its event exists. An event recorded inside a
 * transaction that then rolled back (or failed to commit) is gone although
 * `written` says otherwise; only then is the failure written.
 */
export async function ensureFailureEvent(
  domain: DomainDeps,
  audit: CallAudit,
  outcome: string,
): Promise<void> {
  if (audit.written) {
    const db = domain.regions.resolve(audit.region).db;
    const [kept] = await db
      .select({ id: auditEvents.id })
      .from(auditEvents)
      .where(eq(auditEvents.id, audit.id));
    if (kept !== undefined) return;
    audit.written = false;
  }
  await writeAuditEvent(domain, audit, outcome);
}

/**
 * Writes the event outside any transaction (reads, and every failed call),
 * in the call's region, or the home region when the call named none or an
 * unknown one.
 */
export async function writeAuditEvent(
  domain: DomainDeps,
  audit: CallAudit,
  outcome: string,
): Promise<void> {
  let region = domain.regions.resolve("");
  try {
    region = domain.regions.resolve(audit.region);
  } catch {
    audit.region = region.name;
  }
  if (audit.region === "") audit.region = region.name;
  await insertAuditEvents(region.db, [auditRow(audit, outcome)]);
  audit.written = true;
}
