/**
 * A probe for a Coffer server under `npm run bench` (plain JavaScript, since
 * the bench runs the servers' build):
 *
 *   GC_PAUSES_DIR=/tmp/gc BENCH_SERVER_NODE_FLAGS="--import $PWD/bench/probes/gc-pauses.mjs" \
 *     npm run bench -- --only access --runs 1 --seconds 5 --no-write --keep
 *
 * Records every GC pause of 2 ms or more and every event-loop stall of 8 ms
 * or more, with wall-clock times in epoch milliseconds, and writes them to
 * `$GC_PAUSES_DIR/<pid>.txt` at exit (`gc <start> <ms> <kind>`, `stall
 * <start> <ms>`). bench/probes/slow-calls.mjs sets them beside an h2load
 * log of the same run.
 */
import { writeFileSync } from "node:fs";
import { constants, PerformanceObserver, performance } from "node:perf_hooks";

const lines = [];
const epoch = performance.timeOrigin;
const kinds = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weak-callbacks",
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.duration < 2) continue;
    lines.push(
      `gc ${(epoch + e.startTime).toFixed(1)} ${e.duration.toFixed(1)} ${kinds[e.detail?.kind] ?? e.detail?.kind}`,
    );
  }
}).observe({ entryTypes: ["gc"] });

let last = performance.now();
setInterval(() => {
  const now = performance.now();
  if (now - last > 8) lines.push(`stall ${(epoch + last).toFixed(1)} ${(now - last).toFixed(1)}`);
  last = now;
}, 2).unref();

process.on("exit", () => {
  writeFileSync(
    `${process.env.GC_PAUSES_DIR ?? "/tmp"}/${process.pid}.txt`,
    `${lines.join("\n")}\n`,
  );
});
