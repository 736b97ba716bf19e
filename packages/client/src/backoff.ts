/** How long to wait between attempts: exponential backoff with full jitter. */
export interface BackoffOptions {
  /** The ceiling of the first delay, in milliseconds (default 100). */
  initialDelayMs?: number;
  /** The largest ceiling, in milliseconds (default 5,000 for calls, 30,000 for watches). */
  maxDelayMs?: number;
  /** A number in [0, 1); defaults to Math.random. Tests pass a fixed one. */
  random?: () => number;
}

/** The ceiling of the delay before retry number `attempt`: min(max, initial * 2^attempt). */
export function backoffCeiling(
  attempt: number,
  options: BackoffOptions,
  defaultMaxMs: number,
): number {
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? defaultMaxMs;
  // The exponent stops growing long before 2^n could overflow anything.
  return Math.min(max, initial * 2 ** Math.min(attempt, 40));
}

/**
 * The delay before retry number `attempt` (0 for the first retry): uniform
 * in [0, backoffCeiling), so that clients cut off together do not come back
 * together.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  defaultMaxMs: number,
): number {
  return Math.floor(
    (options.random ?? Math.random)() * backoffCeiling(attempt, options, defaultMaxMs),
  );
}

/**
 * backoffDelay with its attempt count kept, for a loop that retries until it
 * succeeds and then starts over: {@link reset} after a success.
 */
export class Backoff {
  readonly #options: BackoffOptions;
  readonly #defaultMaxMs: number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}, defaultMaxMs = 30_000) {
    this.#options = options;
    this.#defaultMaxMs = defaultMaxMs;
  }

  /** The ceiling of the next delay. */
  get ceilingMs(): number {
    return backoffCeiling(this.#attempt, this.#options, this.#defaultMaxMs);
  }

  /** How many delays were taken since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The next delay, in milliseconds. */
  next(): number {
    const delay = backoffDelay(this.#attempt, this.#options, this.#defaultMaxMs);
    this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
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
