import { failedPrecondition } from "./errors.ts";

/**
 * Refuses a restore once the deletion window has passed, even if the sweeper
 * has not destroyed the resource yet: the window is the promise, not the
 * sweeper's timing.
 */
export function checkRestoreWindow(requestedAt: Date, windowMs: number, what: string): void {
  if (requestedAt.getTime() + windowMs <= Date.now()) {
    throw failedPrecondition(
      `${what} was deleted on ${requestedAt.toISOString()}, past the ${Math.round(windowMs / 1000)} s restore window; it can no longer be restored`,
    );
  }
}
