/**
 * The group-commit histograms of a Coffer server's `GET /metrics`
 * (COFFER_METRICS_LISTEN), read before and after a measured window so that
 * each figure of the bench can show how its calls were batched. Any
 * histogram named `<prefix>_batch_size` counts (e.g. `coffer_access_batch_size`),
 * with its `<prefix>_queue_wait_seconds` when there is one; label sets
 * (regions) are summed. A server without them (before issue 16) is "no
 * batching metric", never an error.
 */

/** One histogram summed over its label sets: cumulative counts by upper bound. */
interface Histogram {
  buckets: Map<number, number>;
  count: number;
  sum: number;
}

/** The histograms of one scrape, by name; undefined when the server has no metrics endpoint. */
export type MetricsScrape = Map<string, Histogram> | undefined;

const BATCH = "_batch_size";
const WAIT = "_queue_wait_seconds";
const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)_(bucket|sum|count)(?:\{([^}]*)\})? (\S+)/;

/** Reads the batch and queue-wait histograms of `metricsUrl` (…/metrics); undefined if it does not answer. */
export async function scrapeBatchMetrics(metricsUrl: string | undefined): Promise<MetricsScrape> {
  if (metricsUrl === undefined) return undefined;
  let text: string;
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return undefined;
    text = await res.text();
  } catch {
    return undefined;
  }
  const out = new Map<string, Histogram>();
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (m === null) continue;
    const [, name = "", part, labels = "", raw = ""] = m;
    if (!name.endsWith(BATCH) && !name.endsWith(WAIT)) continue;
    const h = out.get(name) ?? { buckets: new Map(), count: 0, sum: 0 };
    out.set(name, h);
    const value = Number(raw);
    if (part === "count") h.count += value;
    else if (part === "sum") h.sum += value;
    else {
      const le = /(?:^|,)le="([^"]+)"/.exec(labels)?.[1];
      if (le === undefined) continue;
      const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
      h.buckets.set(bound, (h.buckets.get(bound) ?? 0) + value);
    }
  }
  return out;
}

/** Adds the scrapes of several servers (e.g. two processes on one database). */
export function addScrapes(scrapes: MetricsScrape[]): MetricsScrape {
  if (scrapes.some((s) => s === undefined)) return undefined;
  const out = new Map<string, Histogram>();
  for (const s of scrapes as Map<string, Histogram>[]) {
    for (const [name, h] of s) {
      const into = out.get(name) ?? { buckets: new Map(), count: 0, sum: 0 };
      out.set(name, into);
      into.count += h.count;
      into.sum += h.sum;
      for (const [le, n] of h.buckets) into.buckets.set(le, (into.buckets.get(le) ?? 0) + n);
    }
  }
  return out;
}

/** What one histogram gained over a window. */
export interface HistogramDelta {
  count: number;
  mean: number;
  /** Upper bounds of the buckets holding the median, the 90th percentile and the largest value. */
  p50: number;
  p90: number;
  max: number;
}

/** One batching queue's window: its batch sizes and, when exposed, its queue waits (seconds). */
export interface BatchWindow {
  /** The histogram's prefix without `coffer_`, e.g. "access". */
  name: string;
  size: HistogramDelta;
  wait?: HistogramDelta;
}

/**
 * What a window added to each batching histogram; undefined when either
 * scrape is missing or has no batch histogram (a server without group
 * commit), an empty list when no batch was served in the window.
 */
export function batchDelta(before: MetricsScrape, after: MetricsScrape): BatchWindow[] | undefined {
  if (before === undefined || after === undefined) return undefined;
  const names = [...after.keys()].filter((n) => n.endsWith(BATCH));
  if (names.length === 0) return undefined;
  const out: BatchWindow[] = [];
  for (const name of names.sort()) {
    const prefix = name.slice(0, -BATCH.length);
    const size = delta(before.get(name), after.get(name));
    if (size === undefined) continue;
    const wait = delta(before.get(prefix + WAIT), after.get(prefix + WAIT));
    out.push({ name: prefix.replace(/^coffer_/, ""), size, ...(wait !== undefined && { wait }) });
  }
  return out;
}

function delta(a: Histogram | undefined, b: Histogram | undefined): HistogramDelta | undefined {
  if (b === undefined) return undefined;
  const count = b.count - (a?.count ?? 0);
  if (count <= 0) return undefined;
  const bounds = [...b.buckets.keys()].sort((x, y) => x - y);
  const cumulative = bounds.map((le) => ({
    le,
    n: (b.buckets.get(le) ?? 0) - (a?.buckets.get(le) ?? 0),
  }));
  const at = (q: number) =>
    cumulative.find((c) => c.n >= q * count)?.le ?? Number.POSITIVE_INFINITY;
  return {
    count,
    mean: (b.sum - (a?.sum ?? 0)) / count,
    p50: at(0.5),
    p90: at(0.9),
    max: at(1),
  };
}

const bound = (x: number, f: (v: number) => string) =>
  x === Number.POSITIVE_INFINITY ? "> last bucket" : `≤ ${f(x)}`;
const calls = (v: number) => v.toLocaleString("en");
const millis = (s: number) =>
  s >= 0.001 ? `${+(s * 1e3).toPrecision(3)} ms` : `${+(s * 1e6).toPrecision(3)} µs`;

/**
 * One line for a report: `access: 1,234 batches, mean 15.2 calls (p50 ≤ 16 /
 * p90 ≤ 32 / max ≤ 64), queue wait mean 0.41 ms (p90 ≤ 1 ms)`; "no batching
 * metric" for a server without them, "no batch in the window" when none was served.
 */
export function formatBatches(w: BatchWindow[] | undefined): string {
  if (w === undefined) return "no batching metric";
  if (w.length === 0) return "no batch in the window";
  return w
    .map(({ name, size, wait }) => {
      const sizes = `${name}: ${size.count.toLocaleString("en")} batches, mean ${size.mean.toFixed(1)} calls (p50 ${bound(size.p50, calls)} / p90 ${bound(size.p90, calls)} / max ${bound(size.max, calls)})`;
      return wait === undefined
        ? sizes
        : `${sizes}, queue wait mean ${millis(wait.mean)} (p90 ${bound(wait.p90, millis)})`;
    })
    .join("; ");
}
