import type { Position } from "../db/watch-events.ts";
import { invalid } from "../domain/errors.ts";

/**
 * Cursors are opaque to clients: `<epoch>.<tx>.<seq>`, where the epoch is
 * the first 12 hex digits of the database's watch epoch. A cursor from
 * another database (or from before a restore) has another epoch and gets a
 * RESYNC instead of silently skipping events.
 */
export function formatCursor(epoch: string, p: Position): string {
  return `${epochTag(epoch)}.${p.tx}.${p.seq}`;
}

export function epochTag(epoch: string): string {
  return epoch.replaceAll("-", "").slice(0, 12);
}

/** Parses since_cursor; undefined for an empty one (start from now). */
export function parseCursor(cursor: string): { epoch: string; position: Position } | undefined {
  if (cursor === "") return undefined;
  const m = /^([0-9a-f]{12})\.(\d{1,20})\.(\d{1,18})$/.exec(cursor);
  if (m === null) {
    throw invalid(
      "since_cursor",
      "is not a cursor this server gave out; pass the cursor of the last event handled, or leave it empty to start from now",
    );
  }
  return {
    epoch: m[1] as string,
    position: { tx: BigInt(m[2] as string), seq: Number(m[3]) },
  };
}
