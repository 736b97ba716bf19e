/**
 * WatchSecrets benchmark (issue 4, item 7), run by hand:
 *
 *   npm run bench:watch [-- --only a,b,memory] [--profile] [--no-write]
 *
 * Against real server processes on a fresh Postgres database
 * (`coffer_bench_<hex>`, dropped at the end), it measures:
 *
 * 1. Propagation: the time from a CreateSecretVersion response (as the
 *    writer here sees it) to the rename of the destination file by a real
 *    agent, observed with inotify (`fs.watch` on the destination folders),
 *    so the figure does not depend on agent internals. (a) 1,000 secrets
 *    across 10 agents, (b) 1,000 agents of one secret each. Agents run with
 *    `startAgent` in a few bench/agent-host.ts processes, each with its own
 *    connection, watch stream and state file. Every file's final content is
 *    checked against the last version written.
 * 2. Server memory per idle watch stream, 5,000 streams over 50 HTTP/2
 *    connections, against the Coffer server and a bare connect-node server
 *    (bench/bare-stream-server.ts) with the same client code.
 *
 * Progress goes to stderr; results replace the `watch` section of
 * bench/RESULTS.md (`watch-profile` with --profile, which runs the server
 * and agent hosts under --cpu-prof and adds where their CPU went).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { type FSWatcher, watch as fsWatch, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createCofferClient, SecretService, WatchEventKind } from "@coffer/client";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import postgres from "postgres";
import type { HostMessage, HostRequest } from "./agent-host.ts";
import { cleanup, cleanupOnSignals, onCleanup } from "./support/cleanup.ts";
import {
  type CofferProcess,
  createDatabase,
  createProject,
  type ServerSettings,
  serverSettings,
  startCoffer,
} from "./support/coffer.ts";
import { type ProfileSummary, profilesIn, summarizeProfile } from "./support/cpu-profile.ts";
import {
  allProcessTicks,
  Child,
  cpuTicksOf,
  establishedOn,
  machineTicks,
  postgresTicks,
  REPO_ROOT,
  rssOf,
  sleep,
  TSX_LOADER,
} from "./support/processes.ts";
import { writeSection } from "./support/results.ts";
import { bytes, ms, type Summary, summarize } from "./support/stats.ts";

const BENCH_DIR = path.join(REPO_ROOT, "bench");
/** Records GC pauses in the server and agent hosts (bench/gc-probe.ts). */
const GC_PROBE = pathToFileURL(path.join(BENCH_DIR, "gc-probe.ts")).href;
const RESULTS = path.join(BENCH_DIR, "RESULTS.md");
const CLK_TCK = 100;

const { values: args } = parseArgs({
  options: {
    only: { type: "string", default: "a,b,memory" },
    samples: { type: "string", default: "3000" },
    warmup: { type: "string", default: "500" },
    /** Offered rates, as the interval between updates: each scenario is measured at each. */
    "interval-ms": { type: "string", default: "4,50" },
    "max-seconds": { type: "string", default: "60" },
    streams: { type: "string", default: "5000" },
    /** Memory is measured this many times, alternating bare and Coffer; the verdict is on the medians. */
    "memory-rounds": { type: "string", default: "3" },
    "per-connection": { type: "string", default: "100" },
    profile: { type: "boolean", default: false },
    "no-write": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    /** Heap snapshots of both servers with the streams open, to see what a stream holds (slow). */
    "heap-snapshots": { type: "boolean", default: false },
    /** `info` makes the agents log each event and write, to split the agent side (diagnosis). */
    "agent-log-level": { type: "string", default: "warn" },
    "database-url": {
      type: "string",
      default: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
    },
  },
  strict: true,
});
const only = new Set(args.only.split(","));
const SAMPLES = Number(args.samples);
const WARMUP = Number(args.warmup);
const INTERVALS = args["interval-ms"].split(",").map(Number);
/** The measured part of a scenario stops after this long even short of SAMPLES (warm-up: a fifth). */
const MAX_SECONDS = Number(args["max-seconds"]);
const STREAMS = Number(args.streams);
const MEMORY_ROUNDS = Number(args["memory-rounds"]);
const PER_CONNECTION = Number(args["per-connection"]);
/** Updates in flight at most; past it the writer waits (and reports the rate it reached). */
const MAX_IN_FLIGHT = 32;
/** An update whose file has not been renamed after this long counts as missed. */
const MISSED_AFTER_MS = 30_000;

/** A promise with its resolve function (Promise.withResolvers is Node 22). */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const enc = new TextEncoder();

interface Run {
  dir: string;
  settings: ServerSettings;
  profile: boolean;
}

// ---------------------------------------------------------------- propagation

interface Scenario {
  key: "a" | "b";
  title: string;
  agents: number;
  perAgent: number;
  /** Agent host processes. */
  hosts: number;
  targetP99Ms: number;
}

const SCENARIOS: Scenario[] = [
  {
    key: "a",
    title: "1,000 secrets across 10 agents (100 each)",
    agents: 10,
    perAgent: 100,
    hosts: 2,
    targetP99Ms: 100,
  },
  {
    key: "b",
    title: "1,000 agents of one secret each",
    agents: 1000,
    perAgent: 1,
    hosts: 4,
    targetP99Ms: 250,
  },
];

interface Pending {
  payload: string;
  measured: boolean;
  sentAt: number;
  respAt?: number;
  revision?: number;
  renameAt?: number;
}

interface Tracked {
  index: number;
  id: string;
  name: string;
  /** Absolute path of the destination file. */
  file: string;
  lastWritten: string;
  pending?: Pending;
}

interface Sample {
  name: string;
  revision: number;
  sentAt: number;
  respAt: number;
  renameAt: number;
}

/** CPU used by each party over a window, in % of one core. */
interface CpuShares {
  server: number;
  agents: number;
  /** Every postgres process, this run's database or not. */
  postgres: number;
  bench: number;
  /** Everything else on the machine. */
  others: number;
  topOthers: { what: string; pct: number }[];
  /** The whole machine, in % of all cores. */
  machineBusy: number;
}

/** One rate's measurement within a scenario. */
interface RateRun {
  /** One update offered every this many milliseconds. */
  intervalMs: number;
  latency: Summary;
  /** Response -> VERSION_CREATED on a watch stream held by the bench itself (server fan-out). */
  fanout: Summary;
  /** That event -> the rename (the agent's access and write, plus delivery to it). */
  agentSide: Summary;
  /** CreateSecretVersion round trip, as the writer sees it. */
  write: Summary;
  /** Token lookups and committed transactions in the database over the window (and its drain). */
  db: { tokenLookups: number; commits: number };
  /** With agents logging at info: response -> "event received" and that -> "file written" (ms resolution). */
  agentLog?: { received: Summary; written: Summary };
  gc?: GcReport;
  negative: number;
  sent: number;
  /** Updates sent after the warm-up. */
  measuredSent: number;
  /** Messages received in the window by a stream whose selector matches nothing (default heartbeat). */
  idleMessages: number;
  /** Agents' state-file replacements in the window (inotify on the state folder). */
  stateWrites: number;
  failed: number;
  failures: string[];
  missed: number;
  ratePerS: number;
  /** The measured part hit MAX_SECONDS before SAMPLES updates, below 90 % of the offered rate. */
  capped: boolean;
  windowS: number;
  cpu: CpuShares;
  profiles: ProfileSummary[];
}

interface PropagationResult {
  scenario: Scenario;
  /** % of all cores busy before the scenario started anything. */
  background: number;
  runs: RateRun[];
  agentsReadyS: number;
  hostRss: number;
  verified: number;
  mismatches: string[];
  serverWarnings: string[];
  agentWarnings: string[];
}

function cpuSnapshot(pids: { server: number; agents: number[] }, everyProcess = true) {
  return {
    pids,
    server: cpuTicksOf(pids.server),
    agents: pids.agents.reduce((sum, pid) => sum + cpuTicksOf(pid), 0),
    postgres: postgresTicks(),
    bench: process.cpuUsage(),
    machine: machineTicks(),
    all: everyProcess ? allProcessTicks() : new Map<number, { comm: string; ticks: number }>(),
    at: performance.now(),
  };
}

function cpuShares(
  a: ReturnType<typeof cpuSnapshot>,
  b: ReturnType<typeof cpuSnapshot>,
): CpuShares {
  const seconds = Math.max(0.001, (b.at - a.at) / 1000);
  const pct = (ticks: number) => (100 * ticks) / CLK_TCK / seconds;
  const bench = process.cpuUsage(a.bench);
  const machineCores = pct(b.machine.busy - a.machine.busy);
  const shares = {
    server: pct(b.server - a.server),
    agents: pct(b.agents - a.agents),
    postgres: pct(b.postgres - a.postgres),
    bench: (100 * (bench.user + bench.system)) / 1e6 / seconds,
  };
  // Other processes on the machine (not Postgres, not this run's), busiest first.
  const mine = new Set([a.pids.server, ...a.pids.agents, process.pid]);
  const others: { what: string; pct: number }[] = [];
  for (const [pid, now] of b.all) {
    if (mine.has(pid) || now.comm === "postgres") continue;
    const used = now.ticks - (a.all.get(pid)?.ticks ?? 0);
    if (used <= 0) continue;
    others.push({ what: `${commandOf(pid, now.comm)} (pid ${pid})`, pct: pct(used) });
  }
  others.sort((x, y) => y.pct - x.pct);
  return {
    ...shares,
    // Tick counters of different processes are read a moment apart: over a
    // one-second sample the difference can overshoot, hence the bounds.
    others: Math.min(
      100 * os.cpus().length,
      Math.max(0, machineCores - shares.server - shares.agents - shares.postgres - shares.bench),
    ),
    topOthers: others.slice(0, 3),
    machineBusy: (100 * (b.machine.busy - a.machine.busy)) / (b.machine.total - a.machine.total),
  };
}

/** A short form of a process's command line. */
function commandOf(pid: number, comm: string): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const text = argv
      .map((a) => (a.includes("\n") ? `${a.trim().split("\n")[0]}...` : a))
      .join(" ")
      .replace(/\s+/g, " ");
    return text === "" ? comm : text.slice(0, 90);
  } catch {
    return comm;
  }
}

/** How busy the machine is with nothing of this run going on, over `msWindow`. */
async function backgroundLoad(msWindow = 3_000): Promise<number> {
  const a = machineTicks();
  await sleep(msWindow);
  const b = machineTicks();
  return (100 * (b.busy - a.busy)) / (b.total - a.total);
}

/** Counters of the run's database: token lookups (scans of `tokens`) and transactions. */
async function dbCounters(url: string): Promise<{ tokenLookups: number; commits: number }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    // Statistics reach the shared counters when a backend ends a transaction (at most once a second).
    const [t] = await sql<{ n: string }[]>`
      select (coalesce(idx_scan, 0) + coalesce(seq_scan, 0))::text as n
      from pg_stat_user_tables where relname = 'tokens'`;
    const [d] = await sql<{ n: string }[]>`
      select xact_commit::text as n from pg_stat_database where datname = current_database()`;
    return { tokenLookups: Number(t?.n ?? 0), commits: Number(d?.n ?? 0) };
  } finally {
    await sql.end();
  }
}

/** Distinct messages of warn-or-worse JSON log lines in a log file, with counts. */
async function warnings(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return [];
  }
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let key: string;
    try {
      const j = JSON.parse(line) as { level?: number; msg?: string; err?: unknown; code?: string };
      if ((j.level ?? 0) < 40) continue;
      const err = typeof j.err === "string" ? j.err : (j.err as { message?: string })?.message;
      key = `${j.msg ?? "?"}${j.code ? ` [${j.code}]` : ""}${err ? ` (${err.slice(0, 120)})` : ""}`;
    } catch {
      key = `(not JSON) ${line.slice(0, 160)}`;
    }
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${n} × ${k}`);
}

/**
 * From agents logging at info: per sample, the wall-clock times of "event
 * received" (VERSION_CREATED) and "file written" for its secret and
 * revision, against the response's time (performance.now() mapped to the
 * wall clock; pino's times have millisecond resolution).
 */
async function agentLogTimes(
  logs: string[],
  samples: Sample[],
  folder: string,
): Promise<{ received: Summary; written: Summary }> {
  const received = new Map<string, number>();
  const written = new Map<string, number>();
  for (const file of logs) {
    const text = await readFile(file, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      if (!line.includes('"event received"') && !line.includes('"file written"')) continue;
      try {
        const j = JSON.parse(line) as {
          msg: string;
          time: string;
          kind?: string;
          name?: string;
          revision?: number;
          destination?: string;
          path?: string;
        };
        const t = Date.parse(j.time);
        if (j.msg === "event received" && j.kind === "VERSION_CREATED" && j.path === folder) {
          received.set(`${j.name}#${j.revision}`, t);
        } else if (j.msg === "file written" && j.destination !== undefined) {
          written.set(`${path.basename(j.destination)}#${j.revision}`, t);
        }
      } catch {
        // Not a log line.
      }
    }
  }
  const toWall = (t: number) => performance.timeOrigin + t;
  const r: number[] = [];
  const w: number[] = [];
  for (const x of samples) {
    const key = `${x.name}#${x.revision}`;
    const got = received.get(key);
    const wrote = written.get(key);
    if (got !== undefined) r.push(got - toWall(x.respAt));
    if (got !== undefined && wrote !== undefined) w.push(wrote - got);
  }
  return { received: summarize(r), written: summarize(w) };
}

/** One second of the window: its wall-clock end, and other processes' CPU in it (% of one core). */
interface Tick {
  at: number;
  others: number;
}

/** Other processes' mean CPU over the seconds that overlap [from, to]. */
function othersDuring(timeline: Tick[], from: number, to: number): number {
  const ticks = timeline.filter((t) => t.at >= from && t.at - 1000 <= to);
  return ticks.length === 0 ? 0 : ticks.reduce((sum, t) => sum + t.others, 0) / ticks.length;
}

/** A GC pause: wall-clock start (ms), duration (ms). */
type GcPause = [number, number];

async function readGc(file: string): Promise<GcPause[]> {
  try {
    return (JSON.parse(await readFile(file, "utf8")) as [number, number, number][]).map(
      ([at, ms]) => [at, ms],
    );
  } catch {
    return [];
  }
}

/** GC pauses in the window, and how many of the slowest 1 % of samples one of them overlapped. */
interface GcReport {
  /** Pauses of 50 ms or more in the window: server, all agent hosts. */
  serverLong: number;
  hostsLong: number;
  serverMaxMs: number;
  hostsMaxMs: number;
  /** The slowest 1 % of samples; the share of their latency (send → rename) covered by GC pauses of their agent's host and of the server. */
  tail: number;
  tailHostShare: number;
  tailServerShare: number;
  /** Other processes' CPU (% of one core) during those samples, and over the whole window. */
  tailOthers: number;
  windowOthers: number;
}

function gcReport(
  d: { samples: Sample[]; wall: { from: number; to: number }; timeline: Tick[] },
  server: GcPause[],
  hosts: GcPause[][],
  scenario: Scenario,
): GcReport {
  const timeline = d.timeline;
  const inWindow = (p: GcPause) => p[0] + p[1] >= d.wall.from && p[0] <= d.wall.to;
  const serverIn = server.filter(inWindow);
  const hostsIn = hosts.flat().filter(inWindow);
  const wall = (t: number) => performance.timeOrigin + t;
  const slowest = [...d.samples]
    .sort((a, b) => b.renameAt - b.respAt - (a.renameAt - a.respAt))
    .slice(0, Math.max(1, Math.ceil(d.samples.length / 100)));
  // Milliseconds of [from, to] that pauses cover.
  const covered = (pauses: GcPause[], from: number, to: number) =>
    pauses.reduce(
      (sum, [at, ms]) => sum + Math.max(0, Math.min(to, at + ms) - Math.max(from, at)),
      0,
    );
  let latency = 0;
  let byHost = 0;
  let byServer = 0;
  let others = 0;
  for (const x of slowest) {
    const agent = Math.floor(Number(x.name.slice(1)) / scenario.perAgent);
    const from = wall(x.sentAt);
    const to = wall(x.renameAt);
    latency += x.renameAt - x.respAt;
    byHost += covered(hosts[agent % scenario.hosts] ?? [], wall(x.respAt), to);
    byServer += covered(server, wall(x.respAt), to);
    others += othersDuring(timeline, from, to);
  }
  const max = (ps: GcPause[]) => ps.reduce((m, p) => Math.max(m, p[1]), 0);
  return {
    serverLong: serverIn.filter((p) => p[1] >= 50).length,
    hostsLong: hostsIn.filter((p) => p[1] >= 50).length,
    serverMaxMs: max(serverIn),
    hostsMaxMs: max(hostsIn),
    tail: slowest.length,
    tailHostShare: latency > 0 ? byHost / latency : 0,
    tailServerShare: latency > 0 ? byServer / latency : 0,
    tailOthers: others / Math.max(1, slowest.length),
    windowOthers: othersDuring(timeline, d.wall.from, d.wall.to),
  };
}

/** Starts agent hosts over `configs` and waits until every agent is ready. */
async function startHosts(
  run: Run,
  key: string,
  configs: string[],
  hosts: number,
): Promise<{ hosts: Child[]; readyS: number; rss: number; logs: string[] }> {
  const started = performance.now();
  const children: Child[] = [];
  const logs: string[] = [];
  const ready: Promise<HostMessage & { type: "ready" }>[] = [];
  for (let h = 0; h < hosts; h++) {
    const mine = configs.filter((_, i) => i % hosts === h);
    const logFile = path.join(run.dir, "logs", `agent-host-${key}-${h}.log`);
    logs.push(logFile);
    const flags = run.profile
      ? ["--cpu-prof", `--cpu-prof-dir=${path.join(run.dir, "prof", `${key}-agents`)}`]
      : [];
    const child = new Child(
      `agent-host-${key}-${h}`,
      [
        ...flags,
        "--import",
        TSX_LOADER,
        "--import",
        GC_PROBE,
        path.join(BENCH_DIR, "agent-host.ts"),
        ...mine,
      ],
      {
        logFile,
        ipc: true,
        env: {
          ...process.env,
          BENCH_GC_FILE: path.join(run.dir, "gc", `agent-host-${key}-${h}.json`),
        },
      },
    );
    children.push(child);
    onCleanup(`stop agent-host-${key}-${h}`, () => stopHost(child));
    ready.push(
      new Promise((resolve, reject) => {
        child.proc.on("message", (m: HostMessage) => {
          if (m.type === "ready") resolve(m);
          if (m.type === "failed") reject(new Error(`${child.name}: ${m.error}\n${child.tail()}`));
        });
        void child.exited.then((exit) =>
          reject(new Error(`${child.name} exited (${JSON.stringify(exit)})\n${child.tail()}`)),
        );
      }),
    );
  }
  const messages = await Promise.all(ready);
  return {
    hosts: children,
    readyS: (performance.now() - started) / 1000,
    rss: messages.reduce((sum, m) => sum + m.rss, 0),
    logs,
  };
}

/** Asks a host to stop its agents (they save their state), then stops the process. */
async function stopHost(child: Child): Promise<void> {
  if (child.exit !== undefined) return;
  const stopped = new Promise<void>((resolve) => {
    child.proc.on("message", (m: HostMessage) => {
      if (m.type === "stopped") resolve();
    });
    void child.exited.then(() => resolve());
  });
  try {
    child.proc.send({ type: "stop" } satisfies HostRequest);
  } catch {
    // The channel is gone: the process is on its way out.
  }
  await Promise.race([stopped, sleep(30_000)]);
  // It exits on its own after `stopped` (writing its CPU profile, if any).
  await Promise.race([child.exited, sleep(5_000)]);
  await child.stop(10_000);
}

async function runPropagation(run: Run, scenario: Scenario): Promise<PropagationResult> {
  const { key } = scenario;
  const tag = `[${key}]`;
  const total = scenario.agents * scenario.perAgent;
  const base = path.join(run.dir, key);
  const profDir = path.join(run.dir, "prof", `${key}-server`);
  const background = await backgroundLoad();
  log(
    `${tag} machine busy before starting: ${background.toFixed(0)} % of ${os.cpus().length} cores`,
  );
  const server = await startCoffer(`coffer-server-${key}`, run.settings, {
    logFile: path.join(run.dir, "logs", `server-${key}.log`),
    nodeFlags: run.profile ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [],
    preload: [GC_PROBE],
    env: { BENCH_GC_FILE: path.join(run.dir, "gc", `server-${key}.json`) },
  });
  log(`${tag} server pid ${server.child.pid} on ${server.url}`);
  const { projectId, accessToken } = await createProject(
    server.url,
    run.settings.adminToken,
    `bench-${key}`,
  );
  const writer = createCofferClient({ url: server.url, token: run.settings.adminToken });

  // Secrets, each with a first version.
  const folder = `/bench/${key}`;
  const secrets: Tracked[] = [];
  const payloadOf = (i: number, seq: number) =>
    `${key}:${i}:${seq}:${randomBytes(12).toString("hex")}\n`;
  let made = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (made < total) {
        const i = made++;
        const name = `s${String(i).padStart(4, "0")}`;
        const payload = payloadOf(i, 1);
        const { secret } = await writer.createSecret({
          projectId,
          path: folder,
          name,
          firstVersion: { data: enc.encode(payload) },
        });
        const agent = Math.floor(i / scenario.perAgent);
        secrets[i] = {
          index: i,
          id: secret?.id as string,
          name,
          file: path.join(base, "files", `agent-${String(agent).padStart(4, "0")}`, name),
          lastWritten: payload,
        };
      }
    }),
  );
  log(`${tag} ${total} secrets created`);

  // One config per agent, with a secret_access token in a file, as a sidecar would have.
  const tokenFile = path.join(base, "token");
  await mkdir(path.join(base, "configs"), { recursive: true });
  await mkdir(path.join(base, "state"), { recursive: true });
  await writeFile(tokenFile, accessToken, { mode: 0o600 });
  const configs: string[] = [];
  const dirs = new Set<string>();
  for (let a = 0; a < scenario.agents; a++) {
    const id = String(a).padStart(4, "0");
    const mine = secrets.slice(a * scenario.perAgent, (a + 1) * scenario.perAgent);
    for (const s of mine) dirs.add(path.dirname(s.file));
    const config = {
      server: { url: server.url, token_file: tokenFile },
      project_id: projectId,
      state_file: path.join(base, "state", `agent-${id}.json`),
      log_level: args["agent-log-level"],
      secrets: mine.map((s) => ({ path: folder, name: s.name, destination: s.file })),
    };
    const file = path.join(base, "configs", `agent-${id}.yaml`);
    // JSON is YAML.
    await writeFile(file, JSON.stringify(config, null, 2));
    configs.push(file);
  }

  // Observe renames in the destination folders.
  const byFile = new Map(secrets.map((s) => [s.file, s]));
  let samples: Sample[] = [];
  let negative = 0;
  const finish = (s: Tracked) => {
    const p = s.pending;
    if (p?.respAt === undefined || p.renameAt === undefined) return;
    if (p.measured) {
      samples.push({
        name: s.name,
        revision: p.revision as number,
        sentAt: p.sentAt,
        respAt: p.respAt,
        renameAt: p.renameAt,
      });
      if (p.renameAt < p.respAt) negative += 1;
    }
    s.pending = undefined;
  };
  const watchers: FSWatcher[] = [];
  for (const dir of dirs) {
    await mkdir(dir, { recursive: true });
    const w = fsWatch(dir, (event, filename) => {
      const t = performance.now();
      if (event !== "rename" || filename === null) return;
      const s = byFile.get(path.join(dir, filename));
      const p = s?.pending;
      if (s === undefined || p === undefined || p.renameAt !== undefined) return;
      // The file holds the new version only if it has its payload; a rename
      // from an older write (there should be none) is not the propagation.
      readFile(s.file, "utf8").then(
        (content) => {
          if (s.pending === p && p.renameAt === undefined && content === p.payload) {
            p.renameAt = t;
            finish(s);
          }
        },
        () => {},
      );
    });
    watchers.push(w);
  }
  // Agents' state-file writes (each an atomic replace: a rename in the state folder).
  let stateWrites = 0;
  watchers.push(
    fsWatch(path.join(base, "state"), (event, filename) => {
      if (event === "rename" && filename?.endsWith(".json")) stateWrites += 1;
    }),
  );
  const closeWatchers = onCleanup(`close watchers ${key}`, async () => {
    for (const w of watchers) w.close();
  });

  // The server's fan-out, seen by a watch stream of the bench's own.
  const events = new Map<string, number>();
  const fanoutAbort = new AbortController();
  const fanoutReady = deferred();
  const fanout = (async () => {
    try {
      for await (const e of writer.watchSecrets(
        { projectId, selectors: [{ selector: { case: "pathPrefix", value: folder } }] },
        { signal: fanoutAbort.signal },
      )) {
        const t = performance.now();
        if (e.kind === WatchEventKind.HEARTBEAT) fanoutReady.resolve();
        if (e.kind === WatchEventKind.VERSION_CREATED) events.set(`${e.name}#${e.revision}`, t);
      }
    } catch (err) {
      if (!fanoutAbort.signal.aborted) log(`${tag} bench watch stream failed: ${String(err)}`);
    }
  })();
  await fanoutReady.promise;
  // A stream whose selector matches nothing: with the default 15 s
  // heartbeat it should hear a heartbeat every 15 s, whatever others write.
  const idleAbort = new AbortController();
  let idleMessages = 0;
  let idleCounting = false;
  const idle = (async () => {
    try {
      for await (const _ of writer.watchSecrets(
        {
          projectId,
          selectors: [
            { selector: { case: "location", value: { path: "/nowhere", name: "none" } } },
          ],
        },
        { signal: idleAbort.signal },
      )) {
        if (idleCounting) idleMessages += 1;
      }
    } catch (err) {
      if (!idleAbort.signal.aborted) log(`${tag} idle watch stream failed: ${String(err)}`);
    }
  })();

  const hosts = await startHosts(run, key, configs, scenario.hosts);
  log(
    `${tag} ${scenario.agents} agents ready in ${hosts.readyS.toFixed(1)} s (${hosts.hosts.length} hosts, ${bytes(hosts.rss)} RSS)`,
  );
  for (const s of secrets) {
    const content = await readFile(s.file, "utf8");
    if (content !== s.lastWritten) throw new Error(`${s.file} does not hold the first version`);
  }

  // Drive updates at each rate in turn: round-robin over secrets whose
  // previous update has propagated, warm-up first.
  const pids = { server: server.child.pid, agents: hosts.hosts.map((h) => h.pid) };
  let cursor = 0;
  let seq = 1;
  const drive = async (intervalMs: number) => {
    const rtag = `${tag}[${intervalMs} ms]`;
    samples = [];
    negative = 0;
    const totalUpdates = WARMUP + SAMPLES;
    let sent = 0;
    let failed = 0;
    const failures = new Map<string, number>();
    let inFlight = 0;
    let missed = 0;
    let measureStart = 0;
    let cpuStart: ReturnType<typeof cpuSnapshot> | undefined;
    let hrStart = 0n;
    let measuredSent = 0;
    let dbStart: Awaited<ReturnType<typeof dbCounters>> | undefined;
    let stateWritesStart = 0;
    let wallStart = 0;
    idleMessages = 0;
    const progress = setInterval(() => {
      const p99 = summarize(samples.map((x) => x.renameAt - x.respAt)).p99;
      log(
        `${rtag} sent ${sent} (warm-up ${Math.min(sent, WARMUP)}), measured ${samples.length}, in flight ${inFlight}, failed ${failed}, missed ${missed}, p99 so far ${ms(p99)} ms`,
      );
    }, 5_000);
    // Other processes' CPU, second by second, to tell the system's own tail from interference.
    const timeline: Tick[] = [];
    let last = cpuSnapshot(pids, false);
    const ticker = setInterval(() => {
      const now = cpuSnapshot(pids, false);
      timeline.push({ at: performance.timeOrigin + now.at, others: cpuShares(last, now).others });
      last = now;
    }, 1_000);
    const reaper = setInterval(() => {
      const now = performance.now();
      for (const s of secrets) {
        if (s.pending !== undefined && now - s.pending.sentAt > MISSED_AFTER_MS) {
          missed += 1;
          s.pending = undefined;
        }
      }
    }, 1_000);
    const started = performance.now();
    for (let k = 0; k < totalUpdates; k++) {
      const now = performance.now();
      if (k < WARMUP && now - started > (MAX_SECONDS * 1000) / 5) k = WARMUP;
      if (k >= WARMUP && measureStart > 0 && now - measureStart > MAX_SECONDS * 1000) break;
      if (k === WARMUP && measureStart === 0) {
        dbStart = await dbCounters(run.settings.databaseUrl);
        idleCounting = true;
        stateWritesStart = stateWrites;
        measureStart = performance.now();
        cpuStart = cpuSnapshot(pids);
        hrStart = process.hrtime.bigint();
        wallStart = performance.timeOrigin + performance.now();
      }
      const due = k < WARMUP ? started + k * intervalMs : measureStart + measuredSent * intervalMs;
      const wait = due - performance.now();
      if (wait >= 1) await sleep(wait);
      while (inFlight >= MAX_IN_FLIGHT) await sleep(1);
      let s: Tracked | undefined;
      while (s === undefined) {
        for (let tries = 0; tries < total && s === undefined; tries++) {
          const candidate = secrets[cursor] as Tracked;
          cursor = (cursor + 1) % total;
          if (candidate.pending === undefined) s = candidate;
        }
        if (s === undefined) await sleep(1);
      }
      const target = s;
      const payload = payloadOf(target.index, ++seq);
      const pending: Pending = { payload, measured: k >= WARMUP, sentAt: performance.now() };
      target.pending = pending;
      inFlight += 1;
      sent += 1;
      if (pending.measured) measuredSent += 1;
      writer.createSecretVersion({ secretId: target.id, data: enc.encode(payload) }).then(
        (res) => {
          const t = performance.now();
          inFlight -= 1;
          target.lastWritten = payload;
          if (target.pending !== pending) return;
          pending.respAt = t;
          pending.revision = res.version?.revision ?? 0;
          finish(target);
        },
        (err: unknown) => {
          inFlight -= 1;
          failed += 1;
          const m = String(err).slice(0, 160);
          failures.set(m, (failures.get(m) ?? 0) + 1);
          if (target.pending === pending) target.pending = undefined;
        },
      );
    }
    const sendEnd = performance.now();
    // Drain: every update propagated, or given up on.
    while (secrets.some((s) => s.pending !== undefined) || inFlight > 0) await sleep(20);
    const cpuEnd = cpuSnapshot(pids);
    idleCounting = false;
    const stateWritesInWindow = stateWrites - stateWritesStart;
    const hrEnd = process.hrtime.bigint();
    const wallEnd = performance.timeOrigin + performance.now();
    clearInterval(progress);
    clearInterval(reaper);
    clearInterval(ticker);
    // Let the last statistics reach the shared counters.
    await sleep(1_500);
    const dbEnd = await dbCounters(run.settings.databaseUrl);
    const ratePerS = measuredSent / ((sendEnd - measureStart) / 1000);
    const p = summarize(samples.map((x) => x.renameAt - x.respAt));
    log(
      `${rtag} done: ${samples.length} samples at ${ratePerS.toFixed(0)} updates/s, p50 ${ms(p.p50)} ms, p99 ${ms(p.p99)} ms`,
    );
    const fanouts: number[] = [];
    const agentSide: number[] = [];
    for (const x of samples) {
      const at = events.get(`${x.name}#${x.revision}`);
      if (at === undefined) continue;
      fanouts.push(at - x.respAt);
      agentSide.push(x.renameAt - at);
    }
    // Raw samples, for a look at the tail (kept with --keep).
    await writeFile(
      path.join(run.dir, `samples-${key}-${intervalMs}ms.json`),
      JSON.stringify(
        samples.map((x) => ({
          ...x,
          eventAt: events.get(`${x.name}#${x.revision}`),
          wallRespAt: performance.timeOrigin + x.respAt,
        })),
      ),
    );
    const rateRun: RateRun = {
      intervalMs,
      latency: p,
      fanout: summarize(fanouts),
      agentSide: summarize(agentSide),
      write: summarize(samples.map((x) => x.respAt - x.sentAt)),
      db: {
        tokenLookups: dbEnd.tokenLookups - (dbStart?.tokenLookups ?? 0),
        commits: dbEnd.commits - (dbStart?.commits ?? 0),
      },
      negative,
      sent,
      measuredSent,
      idleMessages,
      stateWrites: stateWritesInWindow,
      failed,
      failures: [...failures].map(([m, n]) => `${n} × ${m}`),
      missed,
      ratePerS,
      // Short of SAMPLES because the system fell behind, not because time was up at the offered rate.
      capped: measuredSent < SAMPLES && ratePerS < 0.9 * (1000 / intervalMs),
      windowS: (cpuEnd.at - (cpuStart?.at ?? 0)) / 1000,
      cpu: cpuStart === undefined ? cpuShares(cpuEnd, cpuEnd) : cpuShares(cpuStart, cpuEnd),
      profiles: [],
    };
    return {
      rateRun,
      samples,
      window: { from: Number(hrStart / 1000n), to: Number(hrEnd / 1000n) },
      wall: { from: wallStart, to: wallEnd },
      timeline,
    };
  };
  const driven: Awaited<ReturnType<typeof drive>>[] = [];
  for (const intervalMs of INTERVALS) driven.push(await drive(intervalMs));

  // Every file holds the last version written.
  const mismatches: string[] = [];
  await sleep(500);
  for (const s of secrets) {
    const content = await readFile(s.file, "utf8").catch(() => "(missing)");
    if (content !== s.lastWritten) {
      mismatches.push(`${s.file}: holds ${JSON.stringify(content.slice(0, 40))}`);
    }
  }
  log(`${tag} verified ${total - mismatches.length}/${total} files hold the last version`);

  fanoutAbort.abort();
  idleAbort.abort();
  await Promise.all([fanout, idle]);
  await closeWatchers();
  for (const h of hosts.hosts) await stopHost(h);
  await server.stop();

  const serverGc = await readGc(path.join(run.dir, "gc", `server-${key}.json`));
  const hostGc: GcPause[][] = [];
  for (let h = 0; h < scenario.hosts; h++) {
    hostGc.push(await readGc(path.join(run.dir, "gc", `agent-host-${key}-${h}.json`)));
  }
  for (const d of driven) {
    d.rateRun.gc = gcReport(d, serverGc, hostGc, scenario);
    if (args["agent-log-level"] === "info" || args["agent-log-level"] === "debug") {
      d.rateRun.agentLog = await agentLogTimes(hosts.logs, d.samples, folder);
    }
    if (run.profile) {
      for (const dir of [profDir, path.join(run.dir, "prof", `${key}-agents`)]) {
        for (const file of await profilesIn(dir)) {
          d.rateRun.profiles.push(await summarizeProfile(file, d.window.from, d.window.to));
        }
      }
    }
  }
  const serverWarnings = await warnings(path.join(run.dir, "logs", `server-${key}.log`));
  const agentWarnings: string[] = [];
  for (const file of hosts.logs) agentWarnings.push(...(await warnings(file)));
  return {
    scenario,
    background,
    runs: driven.map((d) => d.rateRun),
    agentsReadyS: hosts.readyS,
    hostRss: hosts.rss,
    verified: total - mismatches.length,
    mismatches,
    serverWarnings,
    agentWarnings,
  };
}

// ---------------------------------------------------------------- memory

interface MemoryReading {
  /** VmRSS of /proc/<pid>/status, after the forced GC. */
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  gc: boolean;
}

interface MemoryResult {
  server: "coffer" | "bare";
  /** 1-based; rounds alternate bare and Coffer, each with a fresh server process. */
  round: number;
  /** Streams opened. */
  streams: number;
  /** Streams that got their first message. */
  firsts: number;
  connections: number;
  openS: number;
  errors: string[];
  before: MemoryReading;
  after: MemoryReading;
  /** 3 s and 15 s after every stream was cancelled. */
  closed: MemoryReading;
  closedLater: MemoryReading;
  /** With --heap-snapshots: what grew per stream, open vs before opening them. */
  heapGrowth?: { kind: string; bytesPer: number; countPer: number }[];
}

/** Forces GC in the server (bench/memory-probe.ts, on SIGUSR2) and reads its memory. */
async function probe(child: Child, timeoutMs = 60_000): Promise<MemoryReading> {
  const line = child.waitForLine((l) => l.startsWith("bench-memory "), timeoutMs);
  process.kill(child.pid, "SIGUSR2");
  const m = JSON.parse((await line).slice("bench-memory ".length)) as {
    gc: boolean;
    heapUsed: number;
    heapTotal: number;
    external: number;
  };
  return {
    rss: rssOf(child.pid),
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    gc: m.gc,
  };
}

/**
 * Opens `count` WatchSecrets streams, `perConnection` to an HTTP/2
 * connection of its own, one connection at a time, and waits for the first
 * message (a heartbeat) of each. The same code for both servers.
 */
async function openIdleStreams(
  url: string,
  token: string,
  projectId: string,
  count: number,
  perConnection: number,
) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const sessions: Http2SessionManager[] = [];
  const calls: { abort: AbortController; done: Promise<void> }[] = [];
  const errors = new Map<string, number>();
  let firsts = 0;
  const began = performance.now();
  for (let opened = 0; opened < count; ) {
    const sessionManager = new Http2SessionManager(url);
    sessions.push(sessionManager);
    const client = createClient(
      SecretService,
      createConnectTransport({
        baseUrl: url,
        httpVersion: "2",
        sessionManager,
        interceptors: [auth],
      }),
    );
    const firstOfConnection: Promise<void>[] = [];
    for (let s = 0; s < perConnection && opened < count; s++, opened++) {
      const abort = new AbortController();
      const first = deferred();
      let gotFirst = false;
      firstOfConnection.push(first.promise);
      const done = (async () => {
        try {
          for await (const _ of client.watchSecrets(
            {
              projectId,
              selectors: [{ selector: { case: "secretId", value: crypto.randomUUID() } }],
            },
            { signal: abort.signal },
          )) {
            if (!gotFirst) {
              gotFirst = true;
              firsts += 1;
              first.resolve();
            }
          }
        } catch (err) {
          if (!abort.signal.aborted) {
            const m = String(err).slice(0, 160);
            errors.set(m, (errors.get(m) ?? 0) + 1);
          }
        } finally {
          first.resolve();
        }
      })();
      calls.push({ abort, done });
    }
    await Promise.all(firstOfConnection);
    if (sessions.length % 10 === 0) {
      log(
        `[memory] ${opened}/${count} streams open (${((performance.now() - began) / 1000).toFixed(1)} s)`,
      );
    }
  }
  return {
    connections: sessions.length,
    get firstMessages() {
      return firsts;
    },
    errors,
    async close() {
      for (const c of calls) c.abort.abort();
      await Promise.allSettled(calls.map((c) => c.done));
      for (const s of sessions) s.abort();
    },
  };
}

/** Asks the probe for a heap snapshot at `file` with its next reading. */
async function snapshotWith(child: Child, request: string, file: string): Promise<MemoryReading> {
  await writeFile(request, file);
  return probe(child, 600_000);
}

/** Runs the snapshot summary in a child with a large heap. */
function heapGrowthOf(
  before: string,
  after: string,
  per: number,
): { kind: string; bytesPer: number; countPer: number }[] {
  const out = execFileSync(
    process.execPath,
    [
      "--max-old-space-size=16000",
      "--import",
      TSX_LOADER,
      path.join(BENCH_DIR, "support", "heap-snapshot.ts"),
      before,
      after,
      String(per),
    ],
    { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(out) as { kind: string; bytesPer: number; countPer: number }[];
}

async function runMemory(run: Run): Promise<MemoryResult[]> {
  const probeModule = pathToFileURL(path.join(BENCH_DIR, "memory-probe.ts")).href;
  const results: MemoryResult[] = [];
  const rounds = Array.from({ length: MEMORY_ROUNDS }, (_, i) => i + 1);
  for (const [round, which] of rounds.flatMap((r) =>
    [r, r].map((n, i) => [n, i === 0 ? "bare" : "coffer"] as const),
  )) {
    const tag = `[memory ${which} ${round}/${MEMORY_ROUNDS}]`;
    let child: Child;
    let url: string;
    let port: number;
    let projectId: string;
    let stop: () => Promise<unknown>;
    const request = path.join(run.dir, `snapshot-request-${which}`);
    const snapshotEnv = { BENCH_SNAPSHOT_REQUEST: request };
    if (which === "bare") {
      child = new Child(
        "bare-stream-server",
        [
          "--expose-gc",
          "--import",
          TSX_LOADER,
          "--import",
          probeModule,
          path.join(BENCH_DIR, "bare-stream-server.ts"),
        ],
        {
          logFile: path.join(run.dir, "logs", "bare-stream-server.log"),
          env: { ...process.env, ...snapshotEnv },
        },
      );
      const stopBare = onCleanup("stop bare-stream-server", () => child.stop());
      stop = stopBare;
      const line = await child.waitForLine((l) => l.startsWith('{"port"'), 60_000);
      port = (JSON.parse(line) as { port: number }).port;
      url = `http://127.0.0.1:${port}`;
      projectId = crypto.randomUUID();
    } else {
      const server: CofferProcess = await startCoffer("coffer-server-memory", run.settings, {
        logFile: path.join(run.dir, "logs", "server-memory.log"),
        nodeFlags: [
          "--expose-gc",
          ...(run.profile
            ? ["--cpu-prof", `--cpu-prof-dir=${path.join(run.dir, "prof", "memory-server")}`]
            : []),
        ],
        preload: [probeModule],
        env: snapshotEnv,
      });
      child = server.child;
      url = server.url;
      port = server.port;
      stop = server.stop;
      ({ projectId } = await createProject(url, run.settings.adminToken, "bench-memory"));
    }
    const token = run.settings.adminToken;
    log(`${tag} pid ${child.pid} on ${url}`);
    // Warm up the code paths (and JIT) with a few streams, then let them go.
    const warm = await openIdleStreams(url, token, projectId, PER_CONNECTION, PER_CONNECTION);
    await warm.close();
    await sleep(2_000);
    const before = await probe(child);
    // With --heap-snapshots, RSS after this is inflated by the snapshot's own
    // memory; heapUsed (after GC) is not.
    const snapshots =
      args["heap-snapshots"] && round === 1
        ? {
            before: path.join(run.dir, `${which}-before.heapsnapshot`),
            open: path.join(run.dir, `${which}-open.heapsnapshot`),
          }
        : undefined;
    if (snapshots !== undefined) {
      log(`${tag} writing a heap snapshot before opening the streams`);
      await snapshotWith(child, request, snapshots.before);
    }
    const started = performance.now();
    const streams = await openIdleStreams(url, token, projectId, STREAMS, PER_CONNECTION);
    const openS = (performance.now() - started) / 1000;
    const connections = establishedOn(port);
    log(
      `${tag} ${streams.firstMessages} of ${STREAMS} streams got their first message in ${openS.toFixed(1)} s over ${streams.connections} connections (${connections} established on the port)`,
    );
    await sleep(5_000);
    const after = await probe(child);
    if (snapshots !== undefined) {
      log(`${tag} writing a heap snapshot with the streams open`);
      await snapshotWith(child, request, snapshots.open);
    }
    await streams.close();
    await sleep(3_000);
    const closed = await probe(child);
    await sleep(12_000);
    const closedLater = await probe(child);
    let growth: MemoryResult["heapGrowth"];
    if (snapshots !== undefined) {
      log(`${tag} comparing heap snapshots`);
      growth = heapGrowthOf(snapshots.before, snapshots.open, STREAMS);
      if (!args.keep) {
        await rm(snapshots.open, { force: true });
        await rm(snapshots.before, { force: true });
      }
    }
    log(
      `${tag} after closing: heapUsed ${bytes(closed.heapUsed - before.heapUsed)} then ${bytes(closedLater.heapUsed - before.heapUsed)} above before`,
    );
    log(
      `${tag} per stream: ${bytes((after.rss - before.rss) / STREAMS)} RSS, ${bytes((after.heapUsed - before.heapUsed) / STREAMS)} heap`,
    );
    await stop();
    results.push({
      server: which,
      round,
      streams: STREAMS,
      firsts: streams.firstMessages,
      connections,
      openS,
      errors: [...streams.errors].map(([m, n]) => `${n} × ${m}`),
      before,
      after,
      closed,
      closedLater,
      ...(growth !== undefined && { heapGrowth: growth }),
    });
  }
  return results;
}

// ---------------------------------------------------------------- report

function sh(cmd: string, argv: string[]): string {
  try {
    return execFileSync(cmd, argv, { encoding: "utf8", cwd: REPO_ROOT }).trim();
  } catch {
    return "?";
  }
}

function machine(dbUrl: string): string[] {
  const cpuinfo = sh("cat", ["/proc/cpuinfo"]);
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "?";
  const pg = sh("psql", [dbUrl, "-Atc", "show server_version"]);
  return [
    `- CPU: ${sh("nproc", [])} × ${model} (nproc; model from /proc/cpuinfo)`,
    `- RAM: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB; Linux ${os.release()}`,
    `- Node ${process.version}; PostgreSQL ${pg} on 127.0.0.1:5432 (same machine)`,
  ];
}

function verdict(value: number, target: number, lowerIsBetter = true): string {
  const ok = lowerIsBetter ? value <= target : value >= target;
  if (ok) return "met";
  const over = value - target;
  return `missed by ${ms(over)} ms (${((100 * over) / target).toFixed(0)} % over)`;
}

function report(
  command: string,
  props: PropagationResult[],
  memory: MemoryResult[],
  run: Run,
): string {
  const head = sh("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--", "packages"]);
  const out: string[] = [];
  out.push(
    `## WatchSecrets: propagation to agent files, memory per idle stream${run.profile ? " (profiled run)" : args["heap-snapshots"] ? " (heap snapshots)" : ""}`,
  );
  out.push("");
  out.push(
    `Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} at commit \`${head}\`${
      dirty === "" || dirty === "?"
        ? ""
        : ` (with uncommitted changes under packages/ by others at the time: ${dirty
            .split("\n")
            .map((l) => `\`${l.trim()}\``)
            .join(", ")})`
    }, by \`${command}\`.`,
  );
  out.push("");
  out.push(...machine(args["database-url"]));
  if (run.profile) {
    out.push(
      "- Server and agent hosts ran under `--cpu-prof`: figures here carry its overhead; the `watch` section has the unprofiled ones.",
    );
  }
  out.push("");
  if (props.length > 0) {
    const rows = props.flatMap((r) => r.runs.map((x) => ({ r, x })));
    const label = (r: PropagationResult, x: RateRun) => `(${r.scenario.key}) ${x.intervalMs} ms`;
    out.push("### Propagation: CreateSecretVersion response → destination file renamed");
    out.push("");
    out.push(
      `Real server process on a fresh Postgres database; real agents (\`startAgent\`, each with its own client, HTTP/2 connection, watch stream and state file; a \`secret_access\` token; files named by path and name) in separate agent-host processes; the bench process writes (one CreateSecretVersion offered every ${INTERVALS.join(" or ")} ms, round-robin over the secrets whose previous update has landed, at most ${MAX_IN_FLIGHT} in flight) and sees renames with inotify (\`fs.watch\` on the destination folders). A sample counts when the renamed file holds the new payload. Per rate: up to ${WARMUP} updates of warm-up, then ${SAMPLES} measured or ${MAX_SECONDS} s, whichever comes first. Scenarios: (a) ${SCENARIOS[0]?.title}; (b) ${SCENARIOS[1]?.title}.`,
    );
    out.push("");
    out.push(
      "| scenario, offered interval | rate reached | samples | p50 ms | p90 ms | p99 ms | max ms | target p99 | verdict |",
    );
    out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for (const { r, x } of rows) {
      const l = x.latency;
      out.push(
        `| ${label(r, x)} | ${x.ratePerS.toFixed(0)}/s | ${l.n} | ${ms(l.p50)} | ${ms(l.p90)} | ${ms(l.p99)} | ${ms(l.max)} | < ${r.scenario.targetP99Ms} ms | ${verdict(l.p99, r.scenario.targetP99Ms)} |`,
      );
    }
    out.push("");
    for (const { r, x } of rows) {
      if (!x.capped) continue;
      out.push(
        `${label(r, x)}: the system did not keep up with the offered ${(1000 / x.intervalMs).toFixed(0)} updates/s (${MAX_IN_FLIGHT} in flight at most): it reached ${x.ratePerS.toFixed(0)}/s, so these latencies include queueing.`,
      );
      out.push("");
    }
    out.push(
      "Where the time goes, per sample: the writer's CreateSecretVersion round trip; response → VERSION_CREATED on a watch stream the bench holds itself (commit → feed → stream: the server's fan-out); that event → rename (delivery to the agent, its AccessSecretVersionByPath, its write).",
    );
    out.push("");
    const trio = (v: Summary) => `${ms(v.p50)} / ${ms(v.p99)} / ${ms(v.max)}`;
    out.push(
      "| scenario, offered interval | CreateSecretVersion round trip p50 / p99 / max ms | fan-out p50 / p99 / max ms | event → rename p50 / p99 / max ms |",
    );
    out.push("| --- | --- | --- | --- |");
    for (const { r, x } of rows) {
      out.push(`| ${label(r, x)} | ${trio(x.write)} | ${trio(x.fanout)} | ${trio(x.agentSide)} |`);
    }
    out.push("");
    for (const { r, x } of rows) {
      if (x.agentLog === undefined) continue;
      out.push(
        `${label(r, x)}, from the agents' own logs (info level, millisecond times): response → agent logs "event received" ${trio(x.agentLog.received)} ms; "event received" → "file written" ${trio(x.agentLog.written)} ms.`,
      );
      out.push("");
    }
    for (const { r, x } of rows) {
      const g = x.gc;
      if (g === undefined) continue;
      out.push(
        `${label(r, x)}: GC pauses of 50 ms or more in the window: server ${g.serverLong} (longest ${ms(g.serverMaxMs)} ms), agent hosts ${g.hostsLong} (longest ${ms(g.hostsMaxMs)} ms). In the ${g.tail} slowest samples, GC pauses (of 10 ms or more) of the server cover ${(100 * g.tailServerShare).toFixed(0)} % of their response → rename time, those of their agent's host ${(100 * g.tailHostShare).toFixed(0)} %; other processes used ${g.tailOthers.toFixed(0)} % of a core during them, against ${g.windowOthers.toFixed(0)} % over the window.`,
      );
      out.push("");
    }
    out.push(
      "| scenario, offered interval | CPU in the window, % of one core: server / agent hosts / Postgres (all databases) / bench / other processes | CPU ms per measured update: server / agent hosts / Postgres | machine busy | per measured update: transactions / token lookups / agent state-file writes | messages on a stream matching nothing |",
    );
    out.push("| --- | --- | --- | ---: | --- | --- |");
    for (const { r, x } of rows) {
      const c = x.cpu;
      const n = Math.max(1, x.measuredSent);
      // % of a core over the window -> CPU milliseconds per measured update.
      const perUpdate = (pct: number) => ((pct / 100) * x.windowS * 1000) / n;
      out.push(
        `| ${label(r, x)} | ${c.server.toFixed(0)} / ${c.agents.toFixed(0)} / ${c.postgres.toFixed(0)} / ${c.bench.toFixed(0)} / ${c.others.toFixed(0)} | ${perUpdate(c.server).toFixed(1)} / ${perUpdate(c.agents).toFixed(1)} / ${perUpdate(c.postgres).toFixed(1)} | ${c.machineBusy.toFixed(0)} % of ${os.cpus().length} cores | ${(x.db.commits / n).toFixed(1)} / ${(x.db.tokenLookups / n).toFixed(2)} / ${(x.stateWrites / n).toFixed(1)} | ${x.idleMessages} in ${x.windowS.toFixed(0)} s (one heartbeat per 15 s: ${Math.floor(x.windowS / 15)}) |`,
      );
    }
    out.push("");
    for (const r of props) {
      out.push(
        `(${r.scenario.key}) machine busy before the scenario started anything: ${r.background.toFixed(0)} % of ${os.cpus().length} cores; ${r.scenario.agents} agents in ${r.scenario.hosts} host processes were ready in ${r.agentsReadyS.toFixed(1)} s, using ${bytes(r.hostRss)} RSS in all.`,
      );
    }
    out.push("");
    for (const { r, x } of rows) {
      if (x.cpu.others < 10) continue;
      out.push(
        `${label(r, x)}: other processes took ${x.cpu.others.toFixed(0)} % of a core during the window; busiest: ${x.cpu.topOthers
          .map((o) => `\`${o.what}\` ${o.pct.toFixed(0)} %`)
          .join(", ")}.`,
      );
      out.push("");
    }
    out.push("Correctness:");
    out.push("");
    for (const r of props) {
      const total = r.scenario.agents * r.scenario.perAgent;
      const sum = (f: (x: RateRun) => number) => r.runs.reduce((acc, x) => acc + f(x), 0);
      const failures = r.runs.flatMap((x) => x.failures);
      out.push(
        `- (${r.scenario.key}) ${r.verified}/${total} files hold the last version written, at the end; ${sum((x) => x.sent)} updates sent, ${sum((x) => x.failed)} failed, ${sum((x) => x.missed)} not seen within ${MISSED_AFTER_MS / 1000} s${sum((x) => x.negative) > 0 ? `, ${sum((x) => x.negative)} renames seen before the response` : ""}.${
          r.mismatches.length > 0
            ? ` Wrong files, e.g.: ${r.mismatches.slice(0, 3).join("; ")}.`
            : ""
        }${failures.length > 0 ? ` Failures: ${failures.slice(0, 3).join("; ")}.` : ""}`,
      );
      if (r.serverWarnings.length > 0) {
        out.push(`  - server warnings: ${r.serverWarnings.slice(0, 5).join("; ")}`);
      }
      if (r.agentWarnings.length > 0) {
        out.push(`  - agent warnings: ${r.agentWarnings.slice(0, 5).join("; ")}`);
      }
    }
    out.push("");
  }
  if (memory.length > 0) {
    out.push(
      `### Server memory per idle WatchSecrets stream (${STREAMS.toLocaleString("en")} streams, ${PER_CONNECTION} per HTTP/2 connection)`,
    );
    out.push("");
    out.push(
      "Same client code against both servers (connect-node, Connect protocol over h2c, one `Http2SessionManager` per connection, one secret-id selector per stream), each server a fresh process started with `--expose-gc` and bench/memory-probe.ts, which forces GC on SIGUSR2; RSS is VmRSS from /proc after that GC. Before: after a warm-up of 100 streams opened and closed. After: all streams got their first heartbeat, 5 s later. Per stream = (after − before) / streams, so the connections' own cost is spread over their streams.",
    );
    out.push("");
    out.push(
      "| server | streams (got a first message) | RSS before → after | RSS per stream | heapUsed per stream | 3 s / 15 s after cancelling all: RSS vs before; heapUsed vs before |",
    );
    out.push("| --- | ---: | --- | ---: | ---: | --- |");
    for (const m of memory) {
      const n = Math.max(1, m.streams);
      out.push(
        `| ${m.server === "bare" ? "bare connect-node (bench/bare-stream-server.ts)" : "Coffer server"}, round ${m.round} | ${m.streams} (${m.firsts}) | ${bytes(m.before.rss)} → ${bytes(m.after.rss)} | ${bytes((m.after.rss - m.before.rss) / n)} | ${bytes((m.after.heapUsed - m.before.heapUsed) / n)} | RSS ${bytes(m.closed.rss - m.before.rss)} / ${bytes(m.closedLater.rss - m.before.rss)}; heap ${bytes(m.closed.heapUsed - m.before.heapUsed)} / ${bytes(m.closedLater.heapUsed - m.before.heapUsed)} |`,
      );
    }
    const bares = memory.filter((m) => m.server === "bare");
    const coffers = memory.filter((m) => m.server === "coffer");
    if (bares.length > 0 && coffers.length > 0) {
      const perStream = (m: MemoryResult, key: keyof MemoryReading) =>
        (Number(m.after[key]) - Number(m.before[key])) / Math.max(1, m.streams);
      const median = (ms: MemoryResult[], key: keyof MemoryReading) =>
        summarize(ms.map((m) => perStream(m, key))).p50;
      const range = (ms: MemoryResult[], key: keyof MemoryReading) => {
        const v = ms.map((m) => perStream(m, key)).sort((a, b) => a - b);
        return `${bytes(v[0] ?? Number.NaN)} / ${bytes(median(ms, key))} / ${bytes(v.at(-1) ?? Number.NaN)}`;
      };
      const over = median(coffers, "rss") - median(bares, "rss");
      out.push("");
      out.push(
        `Per stream over ${bares.length} rounds (min / median / max): RSS bare ${range(bares, "rss")}, Coffer ${range(coffers, "rss")}; heapUsed bare ${range(bares, "heapUsed")}, Coffer ${range(coffers, "heapUsed")}.`,
      );
      out.push("");
      out.push(
        `Target: memory per idle stream ≤ the bare baseline, on the medians. RSS: ${bytes(median(coffers, "rss"))} vs ${bytes(median(bares, "rss"))}: ${
          over <= 0
            ? "met"
            : `missed by ${bytes(over)} per stream (${((100 * over) / median(bares, "rss")).toFixed(0)} % over)`
        }. heapUsed: ${bytes(median(coffers, "heapUsed"))} vs ${bytes(median(bares, "heapUsed"))} (Coffer − bare: ${bytes(median(coffers, "heapUsed") - median(bares, "heapUsed"))}; heapTotal ${bytes(median(coffers, "heapTotal") - median(bares, "heapTotal"))}; external ${bytes(median(coffers, "external") - median(bares, "external"))}).`,
      );
      if (memory.some((m) => m.heapGrowth !== undefined)) {
        out.push("");
        out.push(
          "This run took heap snapshots (`--heap-snapshots`): its RSS figures include the snapshots' own memory; the `watch` section has clean ones. heapUsed is read after GC and is not affected.",
        );
      }
      for (const m of memory) {
        if (m.heapGrowth === undefined) continue;
        out.push("");
        out.push(
          `${m.server === "bare" ? "Bare server" : "Coffer server"}, heap snapshot with the streams open vs before opening them, self size per stream (count per stream): ${m.heapGrowth
            .slice(0, 12)
            .map((g) => `\`${g.kind}\` ${bytes(g.bytesPer)} (${g.countPer.toFixed(1)})`)
            .join(", ")}.`,
        );
      }
      for (const m of memory) {
        if (m.errors.length > 0) out.push(`- ${m.server} stream errors: ${m.errors.join("; ")}`);
        if (!m.before.gc) out.push(`- ${m.server}: GC was not exposed; readings are without GC`);
      }
    }
    out.push("");
  }
  // Worker threads (tsx's loader, pino) write profiles too: leave out the near-idle ones.
  const profiles = props.flatMap((r) =>
    r.runs.flatMap((x) =>
      x.profiles
        .filter((p) => p.busyMs > 0.05 * p.windowMs)
        .map((p) => ({ key: `(${r.scenario.key}) ${x.intervalMs} ms`, p })),
    ),
  );
  if (profiles.length > 0) {
    out.push("### CPU profiles in the measurement window");
    out.push("");
    out.push(
      "Busy time counts samples of a running main thread; on a machine where other processes compete for the cores, it includes time the thread was runnable but waiting for a core. Shares are of the busy time.",
    );
    out.push("");
    for (const { key, p } of profiles) {
      const who = p.file.includes("-server") ? "server" : "agent host";
      out.push(
        `${key}, ${who} \`${path.basename(p.file)}\`: ${ms(p.busyMs)} ms busy of ${ms(p.windowMs)} ms sampled.`,
      );
      out.push("");
      out.push(
        `- self time by component: ${p.byComponent
          .slice(0, 10)
          .map((c) => `${c.name} ${((100 * c.ms) / Math.max(1, p.busyMs)).toFixed(0)} %`)
          .join(", ")}`,
      );
      out.push(
        `- top functions (self): ${p.topSelf
          .slice(0, 8)
          .map((f) => `\`${f.name}\` ${((100 * f.ms) / Math.max(1, p.busyMs)).toFixed(1)} %`)
          .join(", ")}`,
      );
      out.push(
        `- repository code (inclusive): ${p.topInclusive
          .slice(0, 10)
          .map((f) => `\`${f.name}\` ${((100 * f.ms) / Math.max(1, p.busyMs)).toFixed(0)} %`)
          .join(", ")}`,
      );
      out.push("");
    }
  }
  return out.join("\n");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  cleanupOnSignals();
  const command = `npm run bench:watch${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), "coffer-bench-watch-"));
  onCleanup("remove run folder", async () => {
    if (args.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  });
  await mkdir(path.join(dir, "logs"), { recursive: true });
  await mkdir(path.join(dir, "gc"), { recursive: true });
  log(`run folder ${dir}`);
  const databaseUrl = await createDatabase(args["database-url"]);
  log(`database ${new URL(databaseUrl).pathname.slice(1)}`);
  const run: Run = {
    dir,
    settings: serverSettings(databaseUrl, path.join(dir, "data")),
    profile: args.profile,
  };
  const props: PropagationResult[] = [];
  for (const scenario of SCENARIOS) {
    if (only.has(scenario.key)) props.push(await runPropagation(run, scenario));
  }
  const memory = only.has("memory") ? await runMemory(run) : [];
  const body = report(command, props, memory, run);
  process.stdout.write(`${body}\n`);
  if (!args["no-write"]) {
    const section = run.profile ? "watch-profile" : args["heap-snapshots"] ? "watch-heap" : "watch";
    await writeSection(RESULTS, section, body);
    log(`wrote ${path.relative(REPO_ROOT, RESULTS)}`);
  }
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  log(`bench/watch.ts failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  await cleanup();
}
// HTTP/2 sessions of the clients would keep the process alive a while.
process.exit();
