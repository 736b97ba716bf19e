/**
 * Loaded into a server process by the benchmark (`node --expose-gc --import
 * bench/memory-probe.ts ...`), never by the server itself: on SIGUSR2 it
 * runs full garbage collections and prints one line on stderr,
 * `bench-memory {"rss":...,"heapUsed":...}`, so that memory can be read
 * after garbage is gone rather than whenever V8 last collected. When the
 * file named by `BENCH_SNAPSHOT_REQUEST` exists, it first writes a heap
 * snapshot to the path that file holds, and removes the file.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { writeHeapSnapshot } from "node:v8";

process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  // Twice: the first pass runs finalizers that free more on the second.
  gc?.();
  gc?.();
  const request = process.env.BENCH_SNAPSHOT_REQUEST;
  let snapshot: string | undefined;
  if (request !== undefined && existsSync(request)) {
    snapshot = writeHeapSnapshot(readFileSync(request, "utf8").trim());
    rmSync(request);
  }
  const m = process.memoryUsage();
  process.stderr.write(
    `bench-memory ${JSON.stringify({
      gc: gc !== undefined,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      ...(snapshot !== undefined && { snapshot }),
    })}\n`,
  );
});
