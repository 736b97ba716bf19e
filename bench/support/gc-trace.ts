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
