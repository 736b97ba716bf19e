/**
 * Two builds of Coffer, one measurement, interleaved: AccessSecretVersion
 * at saturation (h2load, 4 connections × 16 streams, 1 KiB payload, a
 * `secret_access` token) against one server per checkout, each on a fresh
 * Postgres database, in rounds that alternate their order (A B, B A, ...),
 * after a warm-up of each. Prints each run and the medians of calls/s and of
 * the server's CPU per call (utime + stime from /proc).
 *
 *   ROOTS=/path/to/before,/path/to/after node --import tsx bench/probes/ab-access.ts
 *
 * Each root is a checkout, installed and built (`npm ci`, `npx turbo run
 * build`), started from its build as `npm start` does. Environment: MODE=grpc
 * (the gRPC port; default Connect unary POSTs on the HTTP port), ROUNDS
 * (default 6), SECONDS per run (default 4; each run is that many seconds
 * of calls at the rate the warm-up found), WARM seconds of warm-up per
 * server (default 8), FLAGS_0 and FLAGS_1 (node flags for the first and
 * second root's server, split on spaces; the same root twice with
 * different flags compares the flags), ENV_0 and ENV_1 (more environment
 * for each, `NAME=value` split on spaces: an allocator's `LD_PRELOAD`, a
 * `GLIBC_TUNABLES`), CLIENTS and STREAMS (h2load's connections and streams
 * per connection, default 4 and 16; 1 and 1 is the bench's lone caller,
 * whose p50 is then the figure to compare), HALF=1 (each round drives both
 * servers at one rate, half the lower of their warm-ups' rates, as the
 * bench's half-rate line does for one server: 4 lanes of 1 connection × 16
 * streams, each on a secret of its own, started a quarter of h2load's 10 ms
 * tick apart; the p99 is then the figure to compare). Every call must be
 * answered 2xx.
 *
 * For a change of a few percent on this 2-core machine, whose single runs
 * vary by ±10 %: `npm run bench` measures against baselines, this answers
 * "did the change help" between two commits. Not run by CI.
 *
 * Its medians spread more than that: one build as both roots (2026-12-07,
 * 2 × AMD EPYC, 6 rounds each) read +6, 0, +5, −8 and +12 % for the first
 * root in calls/s, and a change measured in both orders +10 % first and −7 %
 * second. Run a change both ways (ROOTS=a,b then ROOTS=b,a, or FLAGS_/ENV_ on
 * either side), more than once, and trust only what every run agrees on.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { startAbServer } from "../support/ab.ts";
import { accessLoad } from "../support/access-requests.ts";
import { cleanup } from "../support/cleanup.ts";
import { createAccessTarget } from "../support/coffer.ts";
import { type H2loadOptions, RPS_TICK_MS, runH2loadLanes } from "../support/h2load.ts";
import { CLK_TCK, cpuTicksOf, postgresTicks } from "../support/processes.ts";
import { summarize } from "../support/stats.ts";

const connect = process.env.MODE !== "grpc";
const roots = (process.env.ROOTS ?? "").split(",").filter(Boolean);
const rounds = Number(process.env.ROUNDS ?? 6);
const seconds = Number(process.env.SECONDS ?? 4);
const warm = Number(process.env.WARM ?? 8);
const clients = Number(process.env.CLIENTS ?? 4);
const streams = Number(process.env.STREAMS ?? 16);
const half = process.env.HALF === "1";
/** The bench's half-rate lanes (bench/run.ts): 4 of 1 connection × 16 streams. */
const HALF_LANES = 4;
if (roots.length < 2) throw new Error("ROOTS: give two checkouts, comma-separated");

interface Target {
  root: string;
  pid: number;
  load: Omit<H2loadOptions, "requests" | "timeoutMs">;
  /** With HALF=1: one load per lane, each on a secret of its own. */
  lanes: Omit<H2loadOptions, "requests" | "timeoutMs">[];
  /** Calls per second, as the warm-up found: sizes each run to about `seconds`. */
  rate: number;
  runs: { rate: number; cpuUs: number; p50Ms: number; p99Ms: number }[];
}

/**
 * One h2load run of `requests` calls; measured ones must all be answered
 * 2xx. (Warm-up calls need not: before a server has verified the token, its
 * per-address limit answers some of a cold burst 429, COFFER_PEER_RATE_LIMIT_RPS.)
 * With `rate` (HALF=1), the calls (a multiple of the lanes) go over the
 * target's lanes at that many calls/s in all, the lanes started a quarter
 * tick apart.
 */
async function drive(t: Target, requests: number, measured = true, rate?: number) {
  const r =
    rate === undefined
      ? await runH2loadLanes([{ ...t.load, requests, timeoutMs: 120_000 }])
      : await runH2loadLanes(
          t.lanes.map((lane) => ({
            ...lane,
            rps: rate / t.lanes.length,
            requests: requests / t.lanes.length,
            timeoutMs: 120_000,
          })),
          RPS_TICK_MS / t.lanes.length,
        );
  if (measured && r.status2xx !== requests) {
    throw new Error(`${t.root}: ${requests - r.status2xx} of ${requests} calls not answered 2xx`);
  }
  return r;
}

try {
  const targets: Target[] = [];
  for (const [i, root] of roots.entries()) {
    const { dir, server, settings } = await startAbServer(i, root);
    const { secretId, accessToken } = await createAccessTarget(
      server.url,
      settings.adminToken,
      "ab",
    );
    const lanes: Target["lanes"] = [];
    for (let lane = 0; half && lane < HALF_LANES; lane++) {
      const laneDir = path.join(dir, `lane-${lane}`);
      await mkdir(laneDir);
      const own = await createAccessTarget(server.url, settings.adminToken, `ab-lane-${lane}`);
      lanes.push({
        ...(await accessLoad(laneDir, server, {
          connect,
          secretId: own.secretId,
          token: own.accessToken,
        })),
        clients: 1,
        streams: 16,
        logFile: path.join(laneDir, "h2load.log"),
      });
    }
    targets.push({
      root,
      pid: server.child.pid,
      load: {
        ...(await accessLoad(dir, server, { connect, secretId, token: accessToken })),
        clients,
        streams,
        logFile: path.join(dir, "h2load.log"),
      },
      lanes,
      rate: 0,
      runs: [],
    });
  }
  for (const t of targets) {
    // Warm-up: a first guess of 1,000 calls/s, then at the rate found.
    t.rate = (await drive(t, 1_000, false)).rps;
    t.rate = (await drive(t, Math.ceil(t.rate * warm), false)).rps;
  }
  // HALF=1: one rate for both, so that their tails are compared at the same load.
  const halfRate = Math.min(...targets.map((t) => t.rate)) / 2;
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
      const requests = half
        ? Math.ceil(halfRate * (seconds / HALF_LANES)) * HALF_LANES
        : Math.ceil(t.rate * seconds);
      const before = cpuTicksOf(t.pid);
      const pgBefore = postgresTicks();
      const result = await drive(t, requests, true, half ? halfRate : undefined);
      const perCall = (ticks: number) => (ticks * (1e6 / CLK_TCK)) / requests;
      const cpuUs = perCall(cpuTicksOf(t.pid) - before);
      const pgUs = perCall(postgresTicks() - pgBefore);
      t.runs.push({ rate: result.rps, cpuUs, p50Ms: result.p50Ms, p99Ms: result.p99Ms });
      console.log(
        `${t.root}: ${result.rps.toFixed(0)} calls/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${cpuUs.toFixed(0)} µs CPU/call (+ Postgres ${pgUs.toFixed(0)})`,
      );
    }
  }
  for (const t of targets) {
    const rate = summarize(t.runs.map((x) => x.rate));
    const cpu = summarize(t.runs.map((x) => x.cpuUs));
    const p50 = summarize(t.runs.map((x) => x.p50Ms));
    const p99 = summarize(t.runs.map((x) => x.p99Ms));
    console.log(
      `median ${t.root}: ${rate.p50.toFixed(0)} calls/s, p50 ${p50.p50.toFixed(2)} ms, p99 ${p99.p50.toFixed(2)} ms, ${cpu.p50.toFixed(0)} µs CPU/call (${t.runs.length} runs)`,
    );
  }
} finally {
  await cleanup();
}
