/**
 * Idle memory of the server: starts the real server process the way
 * `npm start` does (`node packages/server/bin/coffer-server.js`), and, for
 * comparison, through tsx's loader as `npm start` used to
 * (`node --import tsx packages/server/src/main.ts`); waits until it serves
 * and has idled, samples VmRSS from /proc, and prints a table. Cases: the
 * embedded database's first start (empty folder: initdb runs), its restart
 * on the same folder, and Postgres (a fresh database on BENCH_DATABASE_URL,
 * TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres, dropped
 * after). Writes its section of bench/RESULTS.md.
 *
 *   node --import tsx bench/idle-rss.ts
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
const IDLE_MS = 10_000;
const SAMPLES = 5;

type Launch = "npm start" | "tsx loader";

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
    launch === "npm start"
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

async function main(): Promise<void> {
  const results: Measure[] = [];
  for (const launch of ["npm start", "tsx loader"] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), "coffer-idle-rss-"));
    try {
      const env = { COFFER_DATA_DIR: dir };
      results.push(await measure("PGlite, first start (initdb)", launch, env));
      results.push(await measure("PGlite, restart", launch, env));
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
      results.push(await measure("Postgres, first start (migrations)", launch, env));
      results.push(await measure("Postgres, restart", launch, env));
    } finally {
      await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await admin.end();
    }
  }

  const mib = (n: number) => n.toFixed(0);
  const table = [
    "| case | launched by | idle RSS MiB (median of 5) | peak RSS (VmHWM) MiB | child processes RSS MiB | ready after s |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
    ...results.map(
      (r) =>
        `| ${r.case} | ${r.launch === "npm start" ? "`npm start` (bundle, plain Node)" : "tsx loader (`node --import tsx src/main.ts`)"} | ${mib(r.rss)} | ${mib(r.hwm)} | ${mib(r.children)} | ${(r.readyMs / 1000).toFixed(1)} |`,
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
    `## Idle memory of the server

Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} at commit \`${commit}\`, by \`node --import tsx bench/idle-rss.ts\`.

- CPU: ${cpus().length} × ${cpu}; RAM: ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average at the end ${load}
- Node ${process.version}

Each case is a fresh server process on an empty installation (no secret), idle ${IDLE_MS / 1000} s after "coffer is serving", then VmRSS sampled once a second ${SAMPLES} times from /proc. "Child processes" is what the server keeps running beside it (the folder lock's \`flock\` and \`cat\`, about 2 MiB); initdb's child process has exited by then.

${table}
`,
  );
}

await main();
