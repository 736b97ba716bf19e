/** How long to wait between attempts: exponential backoff with full jitter. */
export interface BackoffOptions {
  /** The ceiling of the first delay, in milliseconds (default 100). */
  initialDelayMs?: number;
  /** The largest ceiling, in milliseconds (default 5,000 for calls, 30,000 for watches). */
  maxDelayMs?: number;
  /** A number in [0, 1); defaults to Math.random. Tests pass a fixed one. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): uniform
 * in [0, min(max, initial * 2^attempt)), so that clients cut off together do
 * not come back together.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  defaultMaxMs: number,
): number {
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? defaultMaxMs;
  // The exponent stops growing long before 2^n could overflow anything.
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 40));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
