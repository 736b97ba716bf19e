/**
 * Sets the slow calls of one h2load log beside a server's GC pauses and
 * stalls (bench/probes/gc-pauses.mjs), on one time line:
 *
 *   node bench/probes/slow-calls.mjs <run folder>/logs/access-grpc-half-1-0.h2load /tmp/gc/<pid>.txt [15000]
 *
 * h2load's `--log-file` has, per request, its start (epoch µs), its status
 * and its duration (µs). Prints, in milliseconds from the first request,
 * every pause and stall of the window, and the number of calls slower than
 * the threshold (µs; default 15000) that started in each 20 ms slot.
 */
import { readFileSync } from "node:fs";

const [h2loadLog, pausesFile, threshold = "15000"] = process.argv.slice(2);
if (pausesFile === undefined) {
  console.error(
    "usage: node bench/probes/slow-calls.mjs <h2load log> <gc-pauses file> [threshold µs]",
  );
  process.exit(2);
}
const calls = readFileSync(h2loadLog, "utf8")
  .trim()
  .split("\n")
  .map((line) => line.split("\t").map(Number))
  .sort((a, b) => a[0] - b[0]);
const t0 = calls[0][0] / 1000;
const t1 = calls.at(-1)[0] / 1000;
const events = readFileSync(pausesFile, "utf8")
  .trim()
  .split("\n")
  .map((line) => line.split(" "))
  .filter((e) => +e[1] >= t0 - 100 && +e[1] <= t1 + 100)
  .map((e) => [+e[1] - t0, `${e[0]} ${e[2]} ms ${e[3] ?? ""}`]);
const limit = Number(threshold);
const slowCalls = calls.filter(([, , micros]) => micros > limit);
const slots = new Map();
for (const [start] of slowCalls) {
  const slot = Math.floor((start / 1000 - t0) / 20) * 20;
  slots.set(slot, (slots.get(slot) ?? 0) + 1);
}
const rows = [
  ...events,
  ...[...slots].map(([slot, n]) => [
    slot,
    `    ${n} calls > ${limit / 1000} ms started in [${slot}, ${slot + 20}) ms`,
  ]),
].sort((a, b) => a[0] - b[0]);
for (const [t, text] of rows) console.log(`+${t.toFixed(0).padStart(6)} ms  ${text}`);
// A call "meets" a pause when the pause began while the call was in flight.
const meets = ([start, , micros]) => {
  const from = start / 1000 - t0;
  return events.some(([t]) => t >= from && t <= from + micros / 1000);
};
const share = (list) => (100 * list.filter(meets).length) / Math.max(1, list.length);
console.log(
  `${slowCalls.length} of ${calls.length} calls slower than ${limit / 1000} ms; ${slowCalls.filter(meets).length} of them (${share(slowCalls).toFixed(0)} %) had a pause or stall begin while in flight, against ${share(calls).toFixed(0)} % of all calls`,
);
