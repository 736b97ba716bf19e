/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** The first ceiling, in milliseconds (default 100). */
  initialMs?: number;
  /** The largest ceiling (default 30,000). */
  maxMs?: number;
  /** A number in [0, 1); defaults to Math.random. */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: the nth delay is uniform in
 * [0, min(max, initial * 2^n)), so that agents cut off together do not
 * reconnect together. {@link reset} after a success.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** The ceiling of the next delay. */
  get ceilingMs(): number {
    // 2^attempt overflows nothing: the exponent stops growing past the cap.
    return Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.#attempt, 40));
  }

  /** How many delays were taken since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The next delay, in milliseconds. */
  next(): number {
    const delay = Math.floor(this.#random() * this.ceilingMs);
    this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
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
