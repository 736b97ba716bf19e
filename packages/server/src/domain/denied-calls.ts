import { eq, sql } from "drizzle-orm";
import type { Logger } from "pino";
import { insertAuditEvents } from "../db/audit.ts";
import { timeOrderedUuid } from "../db/ids.ts";
import { auditEvents } from "../db/schema.ts";
import type { AuditEventLine, AuditLog } from "./audit-log.ts";
import type { DomainDeps } from "./context.ts";

/** A call refused before any handler ran. */
export interface DeniedCall {
  method: string;
  /** gRPC code name: UNAUTHENTICATED or RESOURCE_EXHAUSTED. */
  outcome: string;
  requestId: string;
  /** The peer's address as aggregated (rpc/peer-limit.ts peerAddress), never its port. */
  address: string;
  /** The token, when it was valid (a per-token rate limit). */
  tokenId?: string;
  /** Else the display prefix of a well-formed token presented. */
  tokenPrefix?: string;
}

/** One minute's aggregate of one kind of refusal from one address. */
interface Window {
  id: string;
  minute: number;
  call: DeniedCall;
  time: Date;
  /** Resolves once the row exists (or the insert failed: then `id` is ""). */
  inserted: Promise<void>;
  /** Calls counted since the row was last brought up to date. */
  pending: number;
  total: number;
}

export interface DeniedCallsOptions {
  logger: Logger;
  auditLog?: AuditLog;
  /** How often counts are written; default 5 s. */
  flushMs?: number;
  /** Most windows held; at the cap every window is flushed and dropped. Default 10,000. */
  maxWindows?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
}

const MINUTE = 60_000;

/**
 * Most windows one address opens per minute. Past it, its refusals of
 * other methods or tokens go into one overflow window per outcome, with
 * method and token prefix "*": a caller presenting a new random token on
 * every call still makes a bounded number of rows.
 */
export const MAX_WINDOWS_PER_ADDRESS = 16;

/** The method and token prefix of an overflow window. */
export const VARIOUS = "*";

/**
 * Audit and logging of calls the chain refuses before any handler runs (no
 * valid token, a rate limit), bounded so that a flood of them cannot fill
 * the audit table or the logs: repeats are aggregated into one audit row per
 * (minute, peer address, token id or prefix or none, method, outcome) with
 * a `count`. The first call of a window inserts its row (count 1) before the
 * call answers and is logged as usual; later ones only count in memory, and
 * the counts are added to the row every `flushMs`, and when the server
 * stops. When a window has closed, one summary line is logged (and copied
 * to the audit log with the row's final count).
 *
 * Each replica keeps its own windows, so N replicas write up to N rows per
 * window. A crash loses at most the last `flushMs` of counts, never a
 * window's first call. Events are written in the home region.
 */
export class DeniedCalls {
  private readonly windows = new Map<string, Window>();
  /** Windows opened per minute and address, for MAX_WINDOWS_PER_ADDRESS. */
  private readonly opened = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private readonly maxWindows: number;
  private readonly now: () => number;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly domain: Pick<DomainDeps, "regions">,
    private readonly options: DeniedCallsOptions,
  ) {
    this.maxWindows = options.maxWindows ?? 10_000;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(), options.flushMs ?? 5_000);
    this.timer.unref();
  }

  /**
   * Counts a refused call. Resolves true when it opened a window (its row
   * is written, and the caller logs it), false when it was only counted.
   * Rejects when the row could not be written.
   */
  async record(denied: DeniedCall): Promise<boolean> {
    const now = this.now();
    const minute = Math.floor(now / MINUTE);
    let call = denied;
    const keyOf = (c: DeniedCall) =>
      JSON.stringify([
        minute,
        c.address,
        c.tokenId ?? c.tokenPrefix ?? "none",
        c.method,
        c.outcome,
      ]);
    let key = keyOf(call);
    let open = this.windows.get(key);
    const perAddress = `${minute} ${call.address}`;
    const opened = this.opened.get(perAddress) ?? 0;
    if (open === undefined && opened >= MAX_WINDOWS_PER_ADDRESS) {
      const { tokenId: _id, ...rest } = denied;
      call = { ...rest, method: VARIOUS, tokenPrefix: VARIOUS };
      key = keyOf(call);
      open = this.windows.get(key);
    }
    if (open !== undefined) {
      open.pending += 1;
      open.total += 1;
      return false;
    }
    if (this.windows.size >= this.maxWindows) void this.flush(true);
    this.opened.set(perAddress, opened + 1);
    const window: Window = {
      id: timeOrderedUuid(),
      minute,
      call,
      time: new Date(now),
      inserted: Promise.resolve(),
      pending: 0,
      total: 1,
    };
    window.inserted = this.insert(window).catch((err: unknown) => {
      // The next call of this kind opens a new window and tries again.
      if (this.windows.get(key) === window) this.windows.delete(key);
      window.id = "";
      throw err;
    });
    this.windows.set(key, window);
    await window.inserted;
    this.options.auditLog?.write(line(window, this.home().name));
    return true;
  }

  /**
   * Adds pending counts to their rows; drops closed windows (all of them
   * when `all`), logging a summary of each that counted more than one call.
   */
  flush(all = false): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushNow(all));
    return this.flushing;
  }

  /** Stops the timer and writes every count. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush(true);
  }

  private async flushNow(all: boolean): Promise<void> {
    const minute = Math.floor(this.now() / MINUTE);
    for (const key of this.opened.keys()) {
      if (all || Number(key.slice(0, key.indexOf(" "))) < minute) this.opened.delete(key);
    }
    for (const [key, window] of this.windows) {
      const closed = all || window.minute < minute;
      if (closed) this.windows.delete(key);
      if (window.pending > 0) {
        await window.inserted.catch(() => undefined);
        if (window.id === "") continue;
        const n = window.pending;
        window.pending = 0;
        try {
          await this.home()
            .db.update(auditEvents)
            .set({ count: sql`${auditEvents.count} + ${n}` })
            .where(eq(auditEvents.id, window.id));
        } catch (err) {
          window.pending += n;
          if (!closed) continue;
          this.options.logger.error(
            { err, audit_event_id: window.id, lost: n },
            "count of refused calls could not be written",
          );
        }
      }
      if (closed && window.total > 1) {
        const c = window.call;
        this.options.logger.info(
          {
            method: c.method,
            code: c.outcome,
            peer: c.address,
            token_id: c.tokenId,
            token_prefix: c.tokenPrefix,
            count: window.total,
            since: window.time.toISOString(),
            audit_event_id: window.id,
          },
          "refused calls (aggregated)",
        );
        this.options.auditLog?.write(line(window, this.home().name));
      }
    }
  }

  private home() {
    return this.domain.regions.resolve("");
  }

  private async insert(w: Window): Promise<void> {
    const c = w.call;
    await insertAuditEvents(this.home().db, [
      {
        id: w.id,
        time: w.time,
        tokenId: c.tokenId ?? null,
        tokenPrefix: c.tokenPrefix ?? null,
        method: c.method,
        outcome: c.outcome,
        requestId: c.requestId,
        peer: c.address,
        count: 1,
      },
    ]);
  }

  /** Windows held (for tests). */
  get size(): number {
    return this.windows.size;
  }
}

function line(w: Window, region: string): AuditEventLine {
  const c = w.call;
  return {
    time: w.time.toISOString(),
    id: w.id,
    region,
    ...(c.tokenId !== undefined && { token_id: c.tokenId }),
    ...(c.tokenPrefix !== undefined && { token_prefix: c.tokenPrefix }),
    method: c.method,
    outcome: c.outcome,
    request_id: c.requestId,
    peer: c.address,
    count: w.total,
  };
}
