import type { Database } from "../db/client.ts";

/** What a health name reports; "SERVICE_UNKNOWN" is only ever a watcher's view of a name not known. */
export type Serving = "SERVING" | "NOT_SERVING";

/** The prefix of each region's health name: `coffer.region.<name>`. */
export const REGION_PREFIX = "coffer.region.";

/** How long a database may take to answer `select 1` before it counts as down. */
export const PING_TIMEOUT_MS = 3_000;

/**
 * The server's health, by name, as grpc.health.v1 reports it:
 * - `coffer.region.<name>`: SERVING while that region's database answers;
 * - "" (the server as a whole) and each served service name: SERVING while
 *   every region's database answers, since any call may need any region.
 *
 * After `shutdown()` every name is NOT_SERVING for good, and watchers end.
 */
export class HealthStatus {
  private readonly regions = new Map<string, Serving>();
  private readonly watchers = new Set<() => void>();
  private down = false;

  constructor(
    regionNames: readonly string[],
    private readonly services: readonly string[],
  ) {
    // Unknown until the first probe: not serving.
    for (const name of regionNames) this.regions.set(name, "NOT_SERVING");
  }

  /** Every known name and its status. */
  all(): Map<string, Serving> {
    const out = new Map<string, Serving>();
    const overall = this.overall();
    for (const name of ["", ...this.services]) out.set(name, overall);
    for (const [region, serving] of this.regions) {
      out.set(REGION_PREFIX + region, this.down ? "NOT_SERVING" : serving);
    }
    return out;
  }

  /** One name's status; undefined for a name this server does not know. */
  get(name: string): Serving | undefined {
    if (name === "" || this.services.includes(name)) return this.overall();
    if (!name.startsWith(REGION_PREFIX)) return undefined;
    const region = this.regions.get(name.slice(REGION_PREFIX.length));
    if (region === undefined) return undefined;
    return this.down ? "NOT_SERVING" : region;
  }

  /** Records what a probe of a region's database found. */
  setRegion(region: string, up: boolean): void {
    const before = this.regions.get(region);
    if (before === undefined) return;
    const now: Serving = up ? "SERVING" : "NOT_SERVING";
    if (before === now) return;
    this.regions.set(region, now);
    this.notify();
  }

  get shuttingDown(): boolean {
    return this.down;
  }

  /** Graceful shutdown: everything is NOT_SERVING from now on, and watches end. */
  shutdown(): void {
    if (this.down) return;
    this.down = true;
    this.notify();
  }

  /**
   * The status of `name` now, then each time it changes (a status is never
   * repeated), until shutdown (after its NOT_SERVING) or until `signal`
   * aborts. A name this server does not know yields "SERVICE_UNKNOWN" and
   * the watch goes on: the set of names is fixed at start, so it stays so.
   * A slow reader gets the latest status, not every step in between.
   */
  async *watch(name: string, signal: AbortSignal): AsyncGenerator<Serving | "SERVICE_UNKNOWN"> {
    let wake: (() => void) | undefined;
    let changed = true;
    const onChange = () => {
      changed = true;
      wake?.();
    };
    this.watchers.add(onChange);
    signal.addEventListener("abort", onChange);
    try {
      let last: Serving | "SERVICE_UNKNOWN" | undefined;
      while (!signal.aborted) {
        if (changed) {
          changed = false;
          const now = this.get(name) ?? "SERVICE_UNKNOWN";
          if (now !== last) {
            last = now;
            yield now;
          }
        }
        // Shutdown ends the watch, once its NOT_SERVING has gone out.
        if (this.down && !changed) return;
        if (!changed) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      }
    } finally {
      this.watchers.delete(onChange);
      signal.removeEventListener("abort", onChange);
    }
  }

  private overall(): Serving {
    if (this.down) return "NOT_SERVING";
    for (const serving of this.regions.values()) if (serving !== "SERVING") return "NOT_SERVING";
    return "SERVING";
  }

  private notify(): void {
    for (const w of this.watchers) w();
  }
}

/** What one probe of a region's database found. */
export interface ProbeResult {
  region: string;
  up: boolean;
  /** How long the ping took (up to the timeout when it did not answer). */
  seconds: number;
}

export interface DatabaseProbe {
  /** Stops probing; resolves once no probe is running. */
  stop(): Promise<void>;
}

/**
 * Pings every region's database, all at once, right away (resolving once
 * that first round is in, so the server starts with a known status) and then
 * `intervalMs` after each region's previous ping ends, so that a slow
 * database never has two pings in flight. A ping that fails or takes longer
 * than `timeoutMs` ({@link PING_TIMEOUT_MS}) counts as down.
 */
export async function startDatabaseProbe(
  regions: readonly { name: string; database: Pick<Database, "ping"> }[],
  intervalMs: number,
  onResult: (result: ProbeResult) => void,
  timeoutMs = PING_TIMEOUT_MS,
): Promise<DatabaseProbe> {
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<void>>();

  const probe = (region: string, database: Pick<Database, "ping">): Promise<void> => {
    const done = (async () => {
      const start = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const up = await Promise.race([database.ping().catch(() => false), timeout]);
      clearTimeout(timer);
      if (stopped) return;
      onResult({ region, up, seconds: (performance.now() - start) / 1000 });
      const next = setTimeout(() => {
        timers.delete(next);
        void probe(region, database);
      }, intervalMs);
      next.unref();
      timers.add(next);
    })();
    running.add(done);
    void done.finally(() => running.delete(done));
    return done;
  };

  await Promise.all(regions.map((r) => probe(r.name, r.database)));
  return {
    stop: async () => {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all(running);
    },
  };
}
