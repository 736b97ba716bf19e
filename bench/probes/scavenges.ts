/**
 * How much of what a Coffer server allocates outlives its young generation,
 * and the latency at that rate: one server (its build, on a fresh Postgres
 * database), one secret, then AccessSecretVersion at a fixed rate from
 * h2load (4 connections × 16 streams), with `--trace-gc-nvp`; prints the
 * latencies and the medians of V8's scavenge figures over the measured
 * window.
 *
 *   node --import tsx bench/probes/scavenges.ts
 *
 * Environment: RPS (per connection, default 650: 2,600 calls/s), DURATION
 * (seconds; default 6), MODE=connect (Connect unary POSTs on the HTTP port
 * instead of gRPC), NOAUTH=1 (no token: every call refused at admission),
 * FLAGS (more node flags for the server, split on spaces), TARGET (default
 * `coffer`; `grpc-js-echo`, `grpc-js-adapter-echo` or `http2-echo` measures
 * that server of bench/baselines/ instead, over gRPC: the bare grpc-js echo,
 * the same echo served through Coffer's grpc-js adapter, and a bare
 * node:http2 handler), FULL_GC_AT (milliseconds after the server starts: it
 * then runs one full garbage collection, `gc()`; for the state a full
 * collection leaves the young generation in), LANES=4 (the bench's
 * half-rate schedule: four h2load processes of one connection, started
 * 2.5 ms apart, instead of one h2load of four connections), WARM_SECONDS
 * (warm-up, default 2 s at the measured rate) and WARM_RPS=max (the warm-up
 * as fast as the 64 streams go, 2,000 calls per connection per warm-up
 * second: the state the bench's half-rate line starts in, after its
 * saturating line), KEEP_LOG (a path: the server's log, with its whole
 * trace, is copied there, and h2load's per-request logs beside it; for
 * flags such as `--trace-incremental-marking` or `--log-maps`). Also prints
 * what each scavenge of the window promoted, in order, with `|MC|` for each
 * mark-compact. See bench/RESULTS.md, the access readings of 2026-12-06
 * (second to fourth, and seventh, sessions).
 */
import { randomUUID } from "node:crypto";
import { copyFile, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { accessLoad } from "../support/access-requests.ts";
import { cleanup, onCleanup } from "../support/cleanup.ts";
import {
  createAccessTarget,
  createDatabase,
  serverSettings,
  startCoffer,
} from "../support/coffer.ts";
import { isCollection, isFullCollection, isScavenge, promotedMb } from "../support/gc-trace.ts";
import { RPS_TICK_MS, runH2loadLanes } from "../support/h2load.ts";
import {
  Child,
  CLK_TCK,
  cpuTicksOf,
  freePort,
  REPO_ROOT,
  TSX_LOADER,
} from "../support/processes.ts";

const rps = Number(process.env.RPS ?? 650);
const seconds = Number(process.env.DURATION ?? 6);
const target = process.env.TARGET ?? "coffer";
const connect =
  process.env.MODE === "connect" && (target === "coffer" || target === "connect-echo");
const dir = await mkdtemp(path.join(os.tmpdir(), "coffer-scavenges-"));
onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
const logFile = path.join(dir, "server.log");
const fullGcAt = process.env.FULL_GC_AT;
const nodeFlags = [
  "--trace-gc-nvp",
  ...(fullGcAt === undefined
    ? []
    : [
        "--expose-gc",
        "--import",
        `data:text/javascript,setTimeout(() => globalThis.gc(), ${Number(fullGcAt)}).unref();`,
      ]),
  ...(process.env.FLAGS ?? "").split(" ").filter(Boolean),
];
// --trace-gc-nvp stamps each line with milliseconds since the process began.
const born = Date.now();
const server = target === "coffer" ? await startServer() : await startEcho(target);
try {
  const load = {
    ...(await accessLoad(dir, server, {
      connect,
      secretId: server.secretId,
      token: process.env.NOAUTH ? undefined : server.accessToken,
    })),
    clients: 4,
    streams: 16,
    rps,
    logFile: path.join(dir, "h2load.log"),
    timeoutMs: (seconds + 60) * 1000,
  };
  // LANES=4: the bench's half-rate schedule, four h2load processes of one
  // connection each, started RPS_TICK_MS / 4 apart; default one h2load.
  const lanes = (requests: number, log = load.logFile, rate: number | undefined = rps) =>
    process.env.LANES === "4"
      ? runH2loadLanes(
          [0, 1, 2, 3].map((i) => ({
            ...load,
            clients: 1,
            rps: rate,
            requests: requests / 4,
            logFile: `${log}.${i}`,
          })),
          RPS_TICK_MS / 4,
        )
      : runH2loadLanes([{ ...load, rps: rate, requests, logFile: log }]);
  // WARM_SECONDS of warm-up at the measured rate, or with WARM_RPS=max as
  // fast as the streams go, sized as 2,000 calls per connection per second
  // (about the seconds asked, at the rates this machine reaches).
  const warm = Number(process.env.WARM_SECONDS ?? 2);
  const warmMax = process.env.WARM_RPS === "max";
  await lanes(
    (warmMax ? 2_000 : rps) * 4 * warm,
    `${load.logFile}.warm-up`,
    warmMax ? undefined : rps,
  );
  const from = Date.now() - born;
  const ticks = cpuTicksOf(server.pid);
  const out = await lanes(rps * 4 * seconds);
  const cpuUs = ((cpuTicksOf(server.pid) - ticks) * (1e6 / CLK_TCK)) / (rps * 4 * seconds);
  const to = Date.now() - born;
  // Its log is whole once it has exited.
  await server.stop();
  if (process.env.KEEP_LOG) {
    await copyFile(logFile, process.env.KEEP_LOG);
    const logs = (await readdir(dir)).filter((f) => f.startsWith("h2load.log"));
    for (const f of logs) await copyFile(path.join(dir, f), `${process.env.KEEP_LOG}.${f}`);
  }
  const lines = (await readFile(logFile, "utf8")).split("\n").filter((line) => {
    const ms = Number(line.match(/\s(\d+) ms: /)?.[1]);
    return ms >= from && ms <= to;
  });
  const collections = lines.filter(isCollection);
  const scavenges = collections.filter(isScavenge).map(
    (l) =>
      new Map(
        l.split(" ").flatMap((kv): [string, string][] => {
          const [key, value] = kv.split("=");
          return value === undefined ? [] : [[key ?? "", value]];
        }),
      ),
  );
  const median = (key: string) => {
    const values = scavenges.map((s) => Number(s.get(key))).sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)] ?? Number.NaN;
  };
  const mb = (key: string) => (median(key) / 1e6).toFixed(2);
  console.log(
    `${out.rps.toFixed(0)} calls/s, p50 ${out.p50Ms.toFixed(2)} ms, p99 ${out.p99Ms.toFixed(2)} ms, max ${out.maxMs.toFixed(1)} ms, ${cpuUs.toFixed(0)} µs of server CPU per call; HTTP 2xx ${out.status2xx}, other ${out.statusOther}`,
  );
  console.log(
    `promoted per scavenge, MB, in order: ${collections
      .map((l) => (isScavenge(l) ? promotedMb(l).toFixed(2) : "|MC|"))
      .join(" ")}`,
  );
  console.log(
    `${scavenges.length} scavenges, medians: every ${median("mutator")} ms, pause ${median("pause")} ms, allocated ${mb("allocated")} MB, survived ${mb("new_space_survived")} MB, promoted ${mb("promoted")} MB; mark-compacts: ${lines.filter(isFullCollection).length}`,
  );
} finally {
  await cleanup();
}

interface Target {
  url: string;
  grpcUrl: string;
  secretId: string;
  accessToken: string | undefined;
  pid: number;
  stop(): Promise<unknown>;
}

/** A Coffer server from its build, on a fresh Postgres database, with one secret to read. */
async function startServer(): Promise<Target> {
  const settings = serverSettings(
    await createDatabase("postgres://postgres@127.0.0.1:5432/test"),
    path.join(dir, "data"),
  );
  const coffer = await startCoffer("coffer", settings, { nodeFlags, logFile });
  const { secretId, accessToken } = await createAccessTarget(coffer.url, settings.adminToken, "gc");
  return {
    url: coffer.url,
    grpcUrl: coffer.grpcUrl,
    secretId,
    accessToken,
    pid: coffer.child.pid,
    stop: coffer.stop,
  };
}

/** An echo of bench/baselines/ (`<name>.ts`), which reads nothing: any secret id does. */
async function startEcho(name: string): Promise<Target> {
  const port = await freePort();
  const child = new Child(
    name,
    [
      ...nodeFlags,
      // grpc-js-adapter-echo takes Coffer's adapter from @coffer/server/testing, sources only.
      "--conditions=@coffer/source",
      "--import",
      TSX_LOADER,
      path.join(REPO_ROOT, "bench", "baselines", `${name}.ts`),
    ],
    { env: { ...process.env, BENCH_PORT: String(port) }, logFile },
  );
  onCleanup(`stop ${name}`, () => child.stop());
  await child.waitForLine((l) => l.startsWith('{"port"'), 30_000);
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    grpcUrl: url,
    secretId: randomUUID(),
    accessToken: undefined,
    pid: child.pid,
    stop: () => child.stop(),
  };
}
