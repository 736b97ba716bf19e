import { execFileSync, spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { percentile } from "./stats.ts";

/** The h2load binary on PATH, or undefined. */
export function h2loadPath(): string | undefined {
  try {
    return (
      execFileSync("sh", ["-c", "command -v h2load"], { encoding: "utf8" }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

/**
 * Makes sure h2load (Debian's nghttp2-client) is there: as root, installs it
 * with apt-get, saying so; otherwise throws with the command to run.
 */
export function ensureH2load(log: (line: string) => void): string {
  const found = h2loadPath();
  if (found !== undefined) return found;
  if (process.getuid?.() !== 0) {
    throw new Error(
      "h2load is missing: install it with `apt-get install nghttp2-client` (as root), then run again",
    );
  }
  log("h2load is missing; running as root: apt-get update && apt-get install -y nghttp2-client");
  execFileSync("apt-get", ["update"], { stdio: ["ignore", "inherit", "inherit"] });
  execFileSync("apt-get", ["install", "-y", "nghttp2-client"], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  const installed = h2loadPath();
  if (installed === undefined) throw new Error("apt-get installed nghttp2-client but no h2load");
  return installed;
}

/** One h2load run with a fixed number of requests (`-n`). */
export interface H2loadOptions {
  /** Full URL of the method, e.g. http://127.0.0.1:50051/pkg.Service/Method. */
  url: string;
  /**
   * File holding the request body, sent with every request (`-d`, which
   * makes them POSTs); without one h2load sends GETs.
   */
  bodyFile?: string;
  /** `name: value` headers (`-H`). May hold a token: never printed from here. */
  headers: string[];
  /** Connections (`-c`). */
  clients: number;
  /** Concurrent streams per connection (`-m`). */
  streams: number;
  /** Requests in all (`-n`). */
  requests: number;
  /**
   * Requests per second for each connection (`--rps`); absent: as fast as
   * the streams allow. Latency is still timed from each request's start,
   * not from when the schedule meant to send it.
   */
  rps?: number;
  /**
   * Per-request log (`--log-file`), read for the latency percentiles.
   * Removed before each run: h2load appends to it, so a log used twice
   * would pool the earlier run's requests (warm-ups included) into this
   * one's percentiles.
   */
  logFile: string;
  /** The run is killed after this long (a hung server must not hang the bench). */
  timeoutMs: number;
}

export interface H2loadResult {
  /** Requests h2load reports done / succeeded (any HTTP status) / failed / errored / timed out. */
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  /** Responses with HTTP status 2xx, and with any other status. */
  status2xx: number;
  statusOther: number;
  /** h2load's own "finished in" time and rate. */
  seconds: number;
  rps: number;
  /**
   * Latency percentiles in milliseconds, computed here from the per-request
   * log (`--log-file`: start, status, microseconds to the end of the
   * response); h2load's summary prints only min/max/mean/sd.
   */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Every request's latency from the log, ms, sorted: to pool several runs' percentiles. */
  latencies: number[];
  /** Requests in the log with a non-2xx status. */
  logNon2xx: number;
}

const num = (text: string, re: RegExp): number => {
  const m = re.exec(text);
  if (m?.[1] === undefined) throw new Error(`h2load output without ${re}:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
};

/** h2load's "finished in 1.23s" (or 850.12ms, 900us), in seconds. */
function finishedIn(out: string): number {
  const m = /finished in ([\d.]+)(us|ms|s),/.exec(out);
  if (m?.[1] === undefined)
    throw new Error(`h2load output without its time:\n${out.slice(0, 2000)}`);
  return Number(m[1]) / (m[2] === "us" ? 1e6 : m[2] === "ms" ? 1e3 : 1);
}

/**
 * h2load's `--rps` timer fires at most every 10 ms (`max(0.01, 1 / rps)`,
 * h2load.cc), and sends what is due at each tick at once: the connections
 * of one h2load, which connect together, send their bursts together.
 */
export const RPS_TICK_MS = 10;

/**
 * Runs one h2load per lane (each lane its own body, e.g. its own secret),
 * lane i started `staggerMs` × i after the first (default: all at once),
 * and adds them up: counts summed, the rate over the slowest lane's time,
 * percentiles over every lane's requests.
 */
export async function runH2loadLanes(lanes: H2loadOptions[], staggerMs = 0): Promise<H2loadResult> {
  const runs = await Promise.all(
    lanes.map(async (o, i) => {
      if (staggerMs > 0 && i > 0) await new Promise((r) => setTimeout(r, staggerMs * i));
      return h2load(o);
    }),
  );
  const sum = (f: (r: H2loadResult) => number) => runs.reduce((n, r) => n + f(r), 0);
  const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const seconds = Math.max(...runs.map((r) => r.seconds));
  return {
    done: sum((r) => r.done),
    succeeded: sum((r) => r.succeeded),
    failed: sum((r) => r.failed),
    errored: sum((r) => r.errored),
    timeout: sum((r) => r.timeout),
    status2xx: sum((r) => r.status2xx),
    statusOther: sum((r) => r.statusOther),
    seconds,
    rps: sum((r) => r.done) / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    latencies,
    logNon2xx: sum((r) => r.logNon2xx),
  };
}

/** Runs h2load (one thread) and parses its summary and per-request log. */
async function h2load(o: H2loadOptions): Promise<H2loadResult> {
  const args = [
    "-t",
    "1",
    "-c",
    String(o.clients),
    "-m",
    String(o.streams),
    "-n",
    String(o.requests),
    ...(o.rps === undefined ? [] : ["--rps", o.rps.toFixed(2)]),
    ...(o.bodyFile === undefined ? [] : ["-d", o.bodyFile]),
    "--log-file",
    o.logFile,
    ...o.headers.flatMap((h) => ["-H", h]),
    o.url,
  ];
  await rm(o.logFile, { force: true });
  const proc = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  proc.stderr.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), o.timeoutMs);
  const code = await new Promise<number | null>((resolve) => proc.once("close", resolve));
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`h2load exited ${code} (timeout ${o.timeoutMs} ms):\n${out.slice(-2000)}`);
  }
  const latencies: number[] = [];
  let logNon2xx = 0;
  for (const line of (await readFile(o.logFile, "utf8")).split("\n")) {
    const cols = line.split("\t");
    if (cols.length < 3) continue;
    const status = Number(cols[1]);
    if (status < 200 || status > 299) logNon2xx += 1;
    latencies.push(Number(cols[2]) / 1000);
  }
  latencies.sort((a, b) => a - b);
  return {
    done: num(out, /requests: \d+ total, \d+ started, (\d+) done/),
    succeeded: num(out, /(\d+) succeeded/),
    failed: num(out, /(\d+) failed/),
    errored: num(out, /(\d+) errored/),
    timeout: num(out, /(\d+) timeout/),
    status2xx: num(out, /status codes: (\d+) 2xx/),
    statusOther: num(out, /(\d+) 3xx/) + num(out, /(\d+) 4xx/) + num(out, /(\d+) 5xx/),
    seconds: finishedIn(out),
    rps: num(out, /finished in [\d.]+(?:us|ms|s), ([\d.]+) req\/s/),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    latencies,
    logNon2xx,
  };
}
