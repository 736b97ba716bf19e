/**
 * Loaded into the server and agent-host processes by the benchmark (`node
 * --import bench/gc-probe.ts ...`): records every garbage-collection pause
 * of 10 ms or more, and writes them at exit to the JSON file named by
 * `BENCH_GC_FILE`, as `[[wallClockStartMs, durationMs, kind], ...]`, so that
 * slow samples can be matched with the pauses that overlapped them.
 */
import { writeFileSync } from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";

const file = process.env.BENCH_GC_FILE;
if (file !== undefined) {
  const pauses: [number, number, number][] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration < 10) continue;
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
      pauses.push([performance.timeOrigin + e.startTime, e.duration, kind]);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  process.once("exit", () => {
    writeFileSync(file, JSON.stringify(pauses));
  });
}
