import { sweepRegion } from "../domain/sweeper.ts";
import type { RunningServer } from "../server.ts";

/**
 * Runs one sweeper pass over every region of a running server now, rather
 * than at its next interval, keeping watch events for `watchRetentionMs`
 * only: 0 prunes them all, as a watcher away longer than the retention
 * would find.
 */
export async function sweepNow(server: RunningServer, watchRetentionMs: number): Promise<void> {
  for (const { database } of server.domain.regions.all()) {
    await sweepRegion(database.db, server.domain.deletionWindowMs, watchRetentionMs);
  }
}
