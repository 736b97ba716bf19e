import { Backoff, sleep } from "@coffer/client";
import type { Logger } from "./logger.ts";
import { type Outcome, refKey, type Unit } from "./reconcile.ts";

/** Options of {@link UnitRunner}. */
export interface RunnerOptions {
  /** Stops the runner: pending requests resolve with undefined. */
  signal: AbortSignal;
  logger: Logger;
  /** Attempts per request before giving up with the `retry` outcome; default unlimited. */
  maxAttempts?: number;
  backoff?: () => Backoff;
  /** Called after each request's final outcome. */
  onOutcome?: (unit: Unit, outcome: Outcome) => void;
}

/**
 * Serialises the reconciles of one unit: one in flight at a time; requests
 * that arrive meanwhile set a dirty flag and share the next run, so a burst
 * of events costs one or two accesses. Retries `retry` outcomes with
 * backoff; a request made during a retry's wait joins the next attempt.
 */
export class UnitRunner {
  readonly unit: Unit;
  readonly #reconcile: (unit: Unit) => Promise<Outcome>;
  readonly #options: RunnerOptions;
  #dirty = false;
  #running: Promise<void> | undefined;
  #waiters: ((outcome: Outcome | undefined) => void)[] = [];
  #wake: AbortController | undefined;

  constructor(unit: Unit, reconcile: (unit: Unit) => Promise<Outcome>, options: RunnerOptions) {
    this.unit = unit;
    this.#reconcile = reconcile;
    this.#options = options;
  }

  /**
   * Asks for a reconcile that starts after this call. Resolves with its
   * outcome, or undefined when the runner was stopped first.
   */
  schedule(): Promise<Outcome | undefined> {
    if (this.#options.signal.aborted) return Promise.resolve(undefined);
    const done = new Promise<Outcome | undefined>((resolve) => this.#waiters.push(resolve));
    this.#dirty = true;
    if (this.#running === undefined) {
      this.#running = this.#loop().finally(() => {
        this.#running = undefined;
      });
    }
    return done;
  }

  /** Cuts a retry's wait short (the server is back). */
  wake(): void {
    this.#wake?.abort();
  }

  /** Resolves when no reconcile is in flight. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  async #loop(): Promise<void> {
    const { signal, logger, maxAttempts = Number.POSITIVE_INFINITY } = this.#options;
    try {
      while (this.#dirty && !signal.aborted) {
        const waiters: ((outcome: Outcome | undefined) => void)[] = [];
        const backoff = this.#options.backoff?.() ?? new Backoff();
        let outcome: Outcome;
        let attempts = 0;
        for (;;) {
          // Requests made until now are served by this attempt.
          this.#dirty = false;
          waiters.push(...this.#waiters.splice(0));
          attempts += 1;
          outcome = await this.#reconcile(this.unit);
          if (outcome.kind !== "retry" || signal.aborted || attempts >= maxAttempts) break;
          const delayMs = backoff.next();
          logger.warn(
            { secret: refKey(this.unit.ref), reason: outcome.reason, attempt: attempts, delayMs },
            "reconcile failed; trying again",
          );
          const wake = new AbortController();
          const onStop = () => wake.abort();
          signal.addEventListener("abort", onStop, { once: true });
          this.#wake = wake;
          await sleep(delayMs, wake.signal);
          this.#wake = undefined;
          signal.removeEventListener("abort", onStop);
        }
        if (signal.aborted && outcome.kind === "retry") {
          for (const resolve of waiters) resolve(undefined);
          break;
        }
        this.#options.onOutcome?.(this.unit, outcome);
        for (const resolve of waiters) resolve(outcome);
      }
    } finally {
      if (signal.aborted) {
        for (const resolve of this.#waiters.splice(0)) resolve(undefined);
      }
    }
  }
}
