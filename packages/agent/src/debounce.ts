/** Options of {@link Debouncer}. */
export interface DebounceOptions {
  /** Quiet time after the last trigger before the action runs. */
  waitMs: number;
  /** The longest a trigger waits under a steady stream of triggers (default 10x waitMs). */
  maxWaitMs?: number;
}

/**
 * Runs an async action once after a burst of triggers: when `waitMs` passed
 * without a new trigger, or `maxWaitMs` after the burst's first trigger.
 * Runs never overlap: a trigger during a run schedules one more run after it.
 */
export class Debouncer {
  readonly #action: () => Promise<void>;
  readonly #waitMs: number;
  readonly #maxWaitMs: number;
  #timer: NodeJS.Timeout | undefined;
  #firstAt = 0;
  #pending = false;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(action: () => Promise<void>, options: DebounceOptions) {
    this.#action = action;
    this.#waitMs = options.waitMs;
    this.#maxWaitMs = options.maxWaitMs ?? Math.max(options.waitMs * 10, options.waitMs);
  }

  /** Asks for a run. */
  trigger(): void {
    if (this.#closed) return;
    const now = Date.now();
    if (!this.#pending) {
      this.#pending = true;
      this.#firstAt = now;
    }
    this.#arm(now);
  }

  /** Whether a run is waiting for its quiet time. */
  get pending(): boolean {
    return this.#pending;
  }

  #arm(now: number): void {
    clearTimeout(this.#timer);
    const due = Math.min(now + this.#waitMs, this.#firstAt + this.#maxWaitMs);
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, due - now));
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#running !== undefined) {
      // Still running: fire again when it ends.
      return;
    }
    this.#pending = false;
    this.#running = this.#action()
      .catch(() => {})
      .finally(() => {
        this.#running = undefined;
        if (!this.#closed && this.#pending && this.#timer === undefined) this.#fire();
      });
  }

  /**
   * Stops accepting triggers; with `flush`, a pending run happens now.
   * Resolves when no run is left.
   */
  async close(flush: boolean): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    if (flush && this.#pending) {
      this.#pending = false;
      await this.#action().catch(() => {});
    }
    this.#pending = false;
  }
}
