/**
 * What keeps short-lived objects alive past the young generation in this
 * Node, one pattern at a time, without a server: each case runs in its own
 * process (`--expose-gc --trace-gc-nvp`) for 3 s of "calls" (200 per turn
 * of the event loop, 64 in flight, each holding a ~4 KB object graph), with
 * two full collections (`gc()`, back to back) after 1 s, and prints the
 * median of what its scavenges promoted after them. A pattern that keeps
 * nothing promotes ~0.00 MB per scavenge; one that keeps every call, about
 * a MB (0.8 to 2.5 from run to run).
 *
 *   node --import tsx bench/probes/retention.ts [case ...]
 *
 * Cases (all by default):
 * - map: a long-lived Map that gains and loses an entry per call (node's
 *   per-session map of HTTP/2 streams, the request budget's holders).
 * - map-renewed: the same, with a young table every 32 calls
 *   (packages/server/src/rpc/transports/stream-tables.ts).
 * - array: the same calls in an array only (the control).
 * - signal-shared: one long-lived AbortSignal, a listener added and removed
 *   per call (the server's shutdown signal under unary Connect calls).
 * - signal-per-call: an AbortController per call, with a listener
 *   (connect's createHandlerContext makes two per call).
 * - event-target-per-call: an EventTarget per call, with a listener (the
 *   control: an AbortSignal is an EventTarget given AbortSignal's prototype).
 *
 * See bench/RESULTS.md, the access reading of 2026-12-06 (fourth session).
 * Not run by CI.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { isCollection, isFullCollection, isScavenge, promotedMb } from "../support/gc-trace.ts";
import { TSX_LOADER } from "../support/processes.ts";
import { percentile } from "../support/stats.ts";

const CASES = [
  "map",
  "map-renewed",
  "array",
  "signal-shared",
  "signal-per-call",
  "event-target-per-call",
] as const;
type Case = (typeof CASES)[number];

const IN_FLIGHT = 64;
const PER_TURN = 200;
const FULL_GC_AT_MS = 1_000;
const RUN_MS = 3_000;

/** A call's objects: about 4 KB. */
const callGraph = () => ({ parts: Array.from({ length: 100 }, (_, i) => ({ i })) });

/** One case's workload, in this process. */
async function workload(which: Case): Promise<void> {
  // In the child only, which runs with the sources' condition.
  const { freshMap } = await import("@coffer/server/testing");
  let map = new Map<number, object>();
  let deleted = 0;
  const shared = new AbortController().signal;
  const inFlight: { id: number; target?: EventTarget; listener: () => unknown }[] = [];
  let id = 0;
  const turn = () => {
    for (let k = 0; k < PER_TURN; k++) {
      const graph = callGraph();
      const call = { id: id++, listener: () => graph } as (typeof inFlight)[number];
      if (which === "map" || which === "map-renewed") map.set(call.id, graph);
      if (which === "signal-shared") call.target = shared;
      if (which === "signal-per-call") call.target = new AbortController().signal;
      if (which === "event-target-per-call") call.target = new EventTarget();
      call.target?.addEventListener("abort", call.listener);
      inFlight.push(call);
      if (inFlight.length <= IN_FLIGHT) continue;
      const done = inFlight.shift() as (typeof inFlight)[number];
      done.target?.removeEventListener("abort", done.listener);
      if (which === "map" || which === "map-renewed") map.delete(done.id);
      if (which === "map-renewed" && ++deleted % 32 === 0) map = freshMap(map);
    }
  };
  // Two at once: what is live at the first (the Map's table of the moment)
  // has surely reached the old generation after the second, as a long-lived
  // server's tables do sooner or later.
  setTimeout(() => {
    const { gc } = globalThis as { gc?: () => void };
    gc?.();
    gc?.();
  }, FULL_GC_AT_MS);
  const end = Date.now() + RUN_MS;
  while (Date.now() < end) {
    turn();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Runs one case in a child process; the median MB its scavenges promoted after the full collections. */
function measure(which: Case): { promotedMb: number; scavenges: number } {
  const out = spawnSync(
    process.execPath,
    [
      "--expose-gc",
      "--trace-gc-nvp",
      // freshMap comes from @coffer/server/testing, sources only.
      "--conditions=@coffer/source",
      "--import",
      TSX_LOADER,
      fileURLToPath(import.meta.url),
      "--run",
      which,
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  if (out.status !== 0) throw new Error(`${which}: exit ${out.status}: ${out.stderr}`);
  const lines = out.stdout.split("\n").filter(isCollection);
  const firstFull = lines.findIndex(isFullCollection);
  const promoted = lines
    .slice(firstFull + 1)
    .filter(isScavenge)
    .map(promotedMb)
    .sort((a, b) => a - b);
  return {
    promotedMb: percentile(promoted, 50),
    scavenges: promoted.length,
  };
}

const args = process.argv.slice(2);
if (args[0] === "--run") {
  await workload(args[1] as Case);
} else {
  const chosen = (args.length > 0 ? args : CASES) as Case[];
  for (const which of chosen) {
    if (!CASES.includes(which))
      throw new Error(`unknown case ${which}: one of ${CASES.join(", ")}`);
    const { promotedMb, scavenges } = measure(which);
    console.log(
      `${which.padEnd(22)} ${promotedMb.toFixed(2)} MB promoted per scavenge (median of ${scavenges} after the full collections)`,
    );
  }
}
