import { percentile } from "./stats.ts";

/**
 * Lines of node's `--trace-gc-nvp` (one per collection, `key=value` pairs),
 * as the probes read them.
 */

/** A scavenge's line (`gc=s`). */
export const isScavenge = (line: string): boolean => line.includes(" gc=s ");

/** A full collection's line: mark-compact or mark-sweep (`gc=mc`, `gc=ms`). */
export const isFullCollection = (line: string): boolean => / gc=(mc|ms) /.test(line);

/** Any collection's line: the trace's other lines are the process's own output. */
export const isCollection = (line: string): boolean => isScavenge(line) || isFullCollection(line);

/** What a scavenge promoted to the old generation, in MB. */
export const promotedMb = (line: string): number =>
  Number(line.match(/ promoted=(\d+)/)?.[1]) / 1e6;

/** What a process's collections did over a window (GcTrace.between). */
export interface GcWindow {
  scavenges: number;
  /** Median of what each scavenge promoted, MB (NaN without scavenges). */
  promotedMb: number;
  /** Mark-compacts (and mark-sweeps). */
  fullCollections: number;
  /** The longest pause of any collection, ms (0 without collections). */
  maxPauseMs: number;
}

/**
 * The `--trace-gc-nvp` lines of a running process, each stamped with the
 * time it reached this one (`now`, µs), so that a measurement can read what
 * collections its window saw. Feed it the process's output lines.
 */
export class GcTrace {
  readonly #events: { at: number; line: string }[] = [];

  constructor(private readonly now: () => number) {}

  /** Takes one output line of the process; lines that are no collection are dropped. */
  line(line: string): void {
    if (isCollection(line)) this.#events.push({ at: this.now(), line });
  }

  /** The collections whose lines arrived between `from` and `to` (µs, as `now`). */
  between(from: number, to: number): GcWindow {
    const lines = this.#events.filter((e) => e.at >= from && e.at <= to).map((e) => e.line);
    const promoted = lines
      .filter(isScavenge)
      .map(promotedMb)
      .sort((a, b) => a - b);
    const pauses = lines.map((l) => Number(l.match(/ pause=([\d.]+)/)?.[1] ?? 0));
    return {
      scavenges: promoted.length,
      promotedMb: percentile(promoted, 50),
      fullCollections: lines.filter(isFullCollection).length,
      maxPauseMs: Math.max(0, ...pauses),
    };
  }
}
