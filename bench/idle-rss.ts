/**
 * Cold start and idle memory of the server: starts the real server process
 * from its build, as `npm start` and an installed `coffer-server` do
 * (`node packages/server/bin/coffer-server.js`, compiled JavaScript in
 * dist/: run `npm run build` first), and, for comparison, from its sources
 * through tsx's loader (`node --import tsx packages/server/src/main.ts`);
 * measures the time from spawn to "coffer is serving", waits while it
 * idles, samples VmRSS from /proc, and prints a table. Cases: the embedded
 * database's first start (empty folder: initdb runs), then RUNS restarts on
 * that existing folder, and the same on Postgres (a fresh database on
 * BENCH_DATABASE_URL, TEST_DATABASE_URL or
 * postgres://postgres@127.0.0.1:5432/postgres, dropped after); restarts are
 * reported as min/median/max. Writes its section of bench/RESULTS.md.
 *
 *   npm run build && node --import tsx bench/idle-rss.ts
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import postgres from "postgres";
import { REPO_ROOT, sleep, TSX_LOADER } from "./support/processes.ts";
import { writeSection } from "./support/results.ts";

/** How long the server idles after "coffer is serving" before sampling. */
const IDLE_MS = 5_000;
const SAMPLES = 3;
/** Restarts on an existing database, per launch and database. */
const RUNS = 5;

type Launch = "build" | "tsx loader";

interface Measure {
  case: string;
  launch: Launch;
  readyMs: number;
  /** Median VmRSS of the server process over the samples, in MiB. */
  rss: number;
  /** VmHWM (peak RSS) of the server process, in MiB. */
  hwm: number;
  /** RSS of the server's child processes at the end (the folder lock's helper), in MiB. */
  children: number;
}

function status(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

/** The RSS of every descendant of `pid`, in MiB. */
function descendantsRss(pid: number): number {
  let out = "";
  try {
    out = execFileSync("ps", ["-e", "-o", "pid=,ppid=,rss="], { encoding: "utf8" });
  } catch {
    return 0;
  }
  const rows = out
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
  const family = new Set([pid]);
  let total = 0;
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, pp, rss] of rows) {
      if (family.has(pp) && !family.has(p)) {
        family.add(p);
        total += rss / 1024;
        grew = true;
      }
    }
  }
  return total;
}

async function measure(
  label: string,
  launch: Launch,
  env: Record<string, string>,
): Promise<Measure> {
  const args =
    launch === "build"
      ? [path.join(REPO_ROOT, "packages/server/bin/coffer-server.js")]
      : ["--import", TSX_LOADER, path.join(REPO_ROOT, "packages/server/src/main.ts")];
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("COFFER_")),
  );
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: {
      ...inherited,
      COFFER_GRPC_LISTEN: "127.0.0.1:0",
      COFFER_HTTP_LISTEN: "127.0.0.1:0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("cannot spawn the server");
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  try {
    const deadline = Date.now() + 180_000;
    while (!stdout.includes("coffer is serving")) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`${label}: the server did not start\n${stderr}\n${stdout}`);
      }
      await sleep(100);
    }
    const readyMs = performance.now() - started;
    await sleep(IDLE_MS);
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      samples.push(status(pid, "VmRSS"));
      await sleep(1000);
    }
    samples.sort((a, b) => a - b);
    return {
      case: label,
      launch,
      readyMs,
      rss: samples[Math.floor(samples.length / 2)] ?? 0,
      hwm: status(pid, "VmHWM"),
      children: descendantsRss(pid),
    };
  } finally {
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(20_000)]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

/** Min, median and max. */
function spread(values: number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? 0,
    median: sorted[Math.floor(sorted.length / 2)] ?? 0,
    max: sorted[sorted.length - 1] ?? 0,
  };
}

interface Row {
  case: string;
  launch: Launch;
  runs: Measure[];
}

/** The first start, then RUNS restarts, on one database. */
async function startAndRestarts(
  database: string,
  launch: Launch,
  env: Record<string, string>,
): Promise<Row[]> {
  const first = await measure(`${database}, first start`, launch, env);
  const restarts: Measure[] = [];
  for (let i = 0; i < RUNS; i++) {
    const m = await measure(`${database}, restart`, launch, env);
    console.error(
      `${database}, ${launch}, restart ${i + 1}/${RUNS}: ready ${m.readyMs.toFixed(0)} ms, RSS ${m.rss.toFixed(0)} MiB`,
    );
    restarts.push(m);
  }
  return [
    {
      case: `${database}, first start (${database === "PGlite" ? "initdb" : "migrations"})`,
      launch,
      runs: [first],
    },
    { case: `${database}, start on an existing database`, launch, runs: restarts },
  ];
}

async function main(): Promise<void> {
  const results: Row[] = [];
  for (const launch of ["build", "tsx loader"] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), "coffer-idle-rss-"));
    try {
      results.push(...(await startAndRestarts("PGlite", launch, { COFFER_DATA_DIR: dir })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const adminUrl =
      process.env.BENCH_DATABASE_URL ??
      process.env.TEST_DATABASE_URL ??
      "postgres://postgres@127.0.0.1:5432/postgres";
    const name = `coffer_idle_rss_${randomBytes(4).toString("hex")}`;
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create database ${name}`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      const env = {
        COFFER_DATABASE_URL: url.toString(),
        COFFER_MASTER_KEYS: `k1:${randomBytes(32).toString("base64")}`,
      };
      results.push(...(await startAndRestarts("Postgres", launch, env)));
    } finally {
      await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await admin.end();
    }
  }

  const fmt = (values: number[], digits: number) => {
    const { min, median, max } = spread(values);
    return values.length === 1
      ? median.toFixed(digits)
      : `${min.toFixed(digits)} / ${median.toFixed(digits)} / ${max.toFixed(digits)}`;
  };
  const table = [
    "| case | launched by | runs | ready after s (min / median / max) | idle RSS MiB (min / median / max) | peak RSS (VmHWM) MiB, median | child processes RSS MiB |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ...results.map(
      (r) =>
        `| ${r.case} | ${r.launch === "build" ? "the build (`coffer-server`, plain Node)" : "tsx loader (`node --import tsx src/main.ts`)"} | ${r.runs.length} | ${fmt(
          r.runs.map((m) => m.readyMs / 1000),
          2,
        )} | ${fmt(
          r.runs.map((m) => m.rss),
          0,
        )} | ${spread(r.runs.map((m) => m.hwm)).median.toFixed(0)} | ${spread(r.runs.map((m) => m.children)).median.toFixed(0)} |`,
    ),
  ].join("\n");
  console.log(table);

  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  }).trim();
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  await writeSection(
    path.join(REPO_ROOT, "bench/RESULTS.md"),
    "idle-rss",
    `## Idle memory and cold start of the server

Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} at commit \`${commit}\`, by \`npm run build && node --import tsx bench/idle-rss.ts\`.

- CPU: ${cpus().length} × ${cpu}; RAM: ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average at the end ${load}
- Node ${process.version}

Each row is a fresh server process on an installation with no secret: first on an empty database (the embedded one runs initdb, Postgres runs the migrations), then ${RUNS} restarts on that existing database. "Ready after" is from spawn to the "coffer is serving" log line. Idle RSS: ${IDLE_MS / 1000} s after that, VmRSS sampled once a second ${SAMPLES} times from /proc (the median of those is one run's figure). "Child processes" is what the server keeps running beside it (the folder lock's \`flock\` and \`cat\`, about 2 MiB); initdb's child process has exited by then.

${table}
`,
  );
}

await main();
