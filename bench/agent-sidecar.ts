/**
 * The sidecar agent's cost, as an operator running it beside an application
 * pays it (issue 13): idle memory with 10 secrets written, start to first
 * file written and start to all 10, and the size of the single-file bundle.
 *
 *   node --import tsx bench/agent-sidecar.ts [--runs 5] [--idle 20] [--only bundle,bin] [--no-write]
 *
 * One run starts a server from its build (`node packages/server/bin/coffer-server.js`,
 * embedded database in a temporary folder), creates a project, a
 * `secret_access` token and 10 secrets, then starts each variant `--runs`
 * times, interleaved (run 1 of every variant, then run 2 ...), each time on
 * a fresh folder and state file (so every start reads all 10 secrets):
 *
 * - `node`: a bare node process that writes the 10 files itself and idles,
 *   the floor any Node sidecar stands on (measured in the same run);
 * - `bundle`: `node packages/agent/dist/coffer-agent.mjs` (the single file);
 * - `bin`: `node packages/agent/bin/coffer-agent.js` (the npm package: dist/
 *   and node_modules);
 * - `tsx`: `node --conditions=@coffer/source --import tsx packages/agent/src/main.ts`,
 *   the agent as it ran before the packages were built (every workspace
 *   package from its TypeScript sources).
 *
 * Times run from just before spawn() to the moment the bench sees the
 * destination file (inotify on the destination folder: the agent renames
 * each file into place). Memory is sampled from /proc 3 s after the 10th
 * file, and again `--idle` seconds after it, once settled: V8's memory
 * reducer gives back the young generation that the start grew, about 8 s
 * after allocation stops, and what a sidecar costs over hours is the
 * settled figure. Each sample: VmRSS, and the Anonymous pages of
 * /proc/<pid>/smaps_rollup, since RSS also counts the node binary's own
 * file-backed pages, which every node process on the machine shares; and
 * VmHWM, the peak. Results go to the `agent-sidecar` section of
 * bench/RESULTS.md.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, watch } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createCofferClient } from "@coffer/client";
import { generateToken } from "@coffer/server";
import { cleanup, cleanupOnSignals, onCleanup } from "./support/cleanup.ts";
import { createProject } from "./support/coffer.ts";
import { Child, freePort, REPO_ROOT, sleep, TSX_LOADER } from "./support/processes.ts";
import { writeSection } from "./support/results.ts";

const SECRETS = 10;
const BUNDLE = path.join(REPO_ROOT, "packages/agent/dist/coffer-agent.mjs");

/** A way to run the agent (or, for `node`, the bare floor). */
interface Variant {
  key: string;
  label: string;
  command: string;
  args: (config: string, files: string[]) => string[];
}

/** Writes the files given as arguments (the same bytes as the agent would), then idles. */
const BARE =
  "const fs=require('fs');for(const f of process.argv.slice(1)){fs.writeFileSync(f+'.tmp','x',{mode:0o400});fs.renameSync(f+'.tmp',f)}setInterval(()=>{},1<<30)";

const VARIANTS: Variant[] = [
  {
    key: "node",
    label: "bare `node` (writes the 10 files itself, then idles)",
    command: "node -e '<write 10 files; setInterval>'",
    args: (_config, files) => ["-e", BARE, ...files],
  },
  {
    key: "bundle",
    label: "single-file bundle",
    command: "node packages/agent/dist/coffer-agent.mjs --config agent.yaml",
    args: (config) => [BUNDLE, "--config", config],
  },
  {
    key: "bin",
    label: "npm package's bin (dist/ + node_modules)",
    command: "node packages/agent/bin/coffer-agent.js --config agent.yaml",
    args: (config) => [
      path.join(REPO_ROOT, "packages/agent/bin/coffer-agent.js"),
      "--config",
      config,
    ],
  },
  {
    key: "tsx",
    label: "tsx, from the sources (before this issue)",
    command:
      "node --conditions=@coffer/source --import tsx packages/agent/src/main.ts --config agent.yaml",
    args: (config) => [
      "--conditions=@coffer/source",
      "--import",
      TSX_LOADER,
      path.join(REPO_ROOT, "packages/agent/src/main.ts"),
      "--config",
      config,
    ],
  },
];

/** MiB. */
interface Memory {
  rss: number;
  anonymous: number;
  peak: number;
}

/** Where an agent's start went, from its log lines (ms after spawn); none for bare node. */
interface Phases {
  /** "agent starting": node's start, the modules, the config, the state file. */
  starting: number;
  /** "watching": the first message of the watch stream (connection, WatchSecrets). */
  watching: number;
}

interface Sample {
  firstMs: number;
  allMs: number;
  phases: Phases | undefined;
  /** 3 s after the 10th file. */
  early: Memory;
  /** `--idle` s after the 10th file. */
  settled: Memory;
}

/** Memory is sampled this long after the 10th file, then again at `--idle`. */
const EARLY_MS = 3000;

/** kB fields of /proc/<pid>/smaps_rollup or /proc/<pid>/status, in MiB. */
function procFields(file: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of readFileSync(file, "utf8").matchAll(/^(\w+):\s+(\d+) kB$/gm)) {
    out.set(m[1] as string, Number(m[2]) / 1024);
  }
  return out;
}

function memoryOf(pid: number): Memory {
  const status = procFields(`/proc/${pid}/status`);
  const rollup = procFields(`/proc/${pid}/smaps_rollup`);
  return {
    rss: status.get("VmRSS") ?? Number.NaN,
    anonymous: rollup.get("Anonymous") ?? Number.NaN,
    peak: status.get("VmHWM") ?? Number.NaN,
  };
}

async function startServer(dir: string): Promise<{ url: string; adminToken: string }> {
  const port = await freePort();
  const adminToken = generateToken().value;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("COFFER_")) env[k] = v;
  Object.assign(env, {
    COFFER_DATA_DIR: path.join(dir, "server"),
    COFFER_BOOTSTRAP_TOKEN: adminToken,
    COFFER_HTTP_LISTEN: `127.0.0.1:${port}`,
    COFFER_GRPC_LISTEN: `127.0.0.1:${await freePort()}`,
    COFFER_LOG_LEVEL: "warn",
    COFFER_RATE_LIMIT_RPS: "0",
    COFFER_PEER_RATE_LIMIT_RPS: "0",
  });
  const child = new Child(
    "coffer-server",
    [path.join(REPO_ROOT, "packages/server/bin/coffer-server.js")],
    {
      env,
      logFile: path.join(dir, "server.log"),
    },
  );
  onCleanup("stop the server", async () => {
    await child.stop();
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + 120_000;
  for (;;) {
    if (child.exit !== undefined) throw new Error(`the server exited\n${child.tail()}`);
    try {
      await createCofferClient({ url, token: adminToken, httpVersion: "1.1" }).listSecrets(
        { projectId: "00000000-0000-0000-0000-000000000000" },
        { timeoutMs: 2000 },
      );
      break;
    } catch (err) {
      // Serving: the call reached the server and was refused on its merits.
      if (!/ECONNREFUSED|fetch failed|unavailable/i.test(String(err))) break;
      if (performance.now() > deadline)
        throw new Error(`the server did not serve\n${child.tail()}`);
      await sleep(200);
    }
  }
  return { url, adminToken };
}

/**
 * One start of `variant` on a fresh folder: times to the files, then memory
 * once idle (unless `idleMs` is 0: a warm-up start, stopped once the files
 * are there).
 */
async function runOnce(
  variant: Variant,
  work: string,
  server: { url: string; projectId: string; token: string },
  idleMs: number,
  index: string,
): Promise<Sample | undefined> {
  const dir = path.join(work, `${variant.key}-${index}`);
  const out = path.join(dir, "out");
  mkdirSync(out, { recursive: true });
  const names = Array.from({ length: SECRETS }, (_, i) => `s${i}`);
  const files = names.map((n) => path.join(out, n));
  const config = path.join(dir, "agent.yaml");
  await writeFile(
    config,
    JSON.stringify({
      server: { url: server.url },
      project_id: server.projectId,
      state_file: path.join(dir, "state.json"),
      secrets: names.map((name) => ({ path: "/sidecar", name, destination: path.join(out, name) })),
    }),
  );
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("COFFER_")) env[k] = v;
  env.COFFER_TOKEN = server.token;

  const seen = new Map<string, number>();
  let allSeen: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    allSeen = resolve;
  });
  const watcher = watch(out, (_event, name) => {
    const now = performance.now();
    if (name === null || seen.has(name) || !names.includes(name)) return;
    if (!existsSync(path.join(out, name))) return;
    seen.set(name, now);
    if (seen.size === SECRETS) allSeen();
  });
  const spawnedAt = Date.now();
  const started = performance.now();
  const child = new Child(variant.key, variant.args(config, files), {
    env,
    cwd: dir,
    logFile: path.join(dir, "agent.log"),
  });
  // pino's times are the wall clock, to the millisecond.
  const logged = (msg: string) =>
    child
      .waitForLine((line) => line.includes(`"msg":"${msg}"`), 30_000)
      .then((line) => Date.parse((JSON.parse(line) as { time: string }).time) - spawnedAt);
  const phases =
    variant.key === "node"
      ? undefined
      : Promise.all([logged("agent starting"), logged("watching")]);
  phases?.catch(() => {});
  try {
    const timeout = sleep(30_000).then(() => "timeout" as const);
    const ended = child.exited.then(() => "exited" as const);
    const result = await Promise.race([all.then(() => "done" as const), timeout, ended]);
    if (result !== "done") {
      throw new Error(
        `${variant.key}: ${seen.size}/${SECRETS} files after ${result}\n${child.tail()}`,
      );
    }
    const times = [...seen.values()].map((t) => t - started);
    if (idleMs === 0) return undefined;
    const [starting, watching] = (await phases) ?? [];
    const last = Math.max(...seen.values());
    const sampleAt = async (ms: number) => {
      await sleep(last + ms - performance.now());
      if (child.exit !== undefined) {
        throw new Error(`${variant.key} exited while idle\n${child.tail()}`);
      }
      return memoryOf(child.pid);
    };
    const early = await sampleAt(EARLY_MS);
    const settled = await sampleAt(idleMs);
    return {
      firstMs: Math.min(...times),
      allMs: Math.max(...times),
      phases: starting === undefined || watching === undefined ? undefined : { starting, watching },
      early,
      settled,
    };
  } finally {
    watcher.close();
    await child.stop(10_000);
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 === 1
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
}

/** min / median / max, formatted by `f`. */
function spread(values: number[], f: (v: number) => string): string {
  return `${f(Math.min(...values))} / ${f(median(values))} / ${f(Math.max(...values))}`;
}

function shell(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { cwd: REPO_ROOT, encoding: "utf8" }).trimEnd();
  } catch {
    return "(unavailable)";
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "5" },
      idle: { type: "string", default: "20" },
      only: { type: "string" },
      "no-write": { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs);
  const idleMs = Number(values.idle) * 1000;
  if (!(idleMs > EARLY_MS)) throw new Error("--idle is in seconds, more than 3");
  const only = values.only?.split(",");
  const variants = VARIANTS.filter((v) => only === undefined || only.includes(v.key));
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
  const bundleBytes = statSync(BUNDLE).size;
  const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

  cleanupOnSignals();
  const work = mkdtempSync(path.join(tmpdir(), "coffer-agent-sidecar-"));
  onCleanup("remove the work folder", async () => rmSync(work, { recursive: true, force: true }));
  const results = new Map<string, Sample[]>();
  try {
    const { url, adminToken } = await startServer(work);
    const { projectId, accessToken } = await createProject(url, adminToken, "sidecar");
    const admin = createCofferClient({ url, token: adminToken });
    for (let i = 0; i < SECRETS; i++) {
      await admin.createSecret({
        projectId,
        path: "/sidecar",
        name: `s${i}`,
        firstVersion: { data: randomBytes(48) },
      });
    }
    const server = { url, projectId, token: accessToken };
    // A running server has served before, and the machine's page cache
    // holds node and the agent's files: one start of each variant first,
    // not counted.
    for (const variant of variants) await runOnce(variant, work, server, 0, "warm-up");
    for (let run = 0; run < runs; run++) {
      for (const variant of variants) {
        const sample = await runOnce(variant, work, server, idleMs, String(run));
        if (sample === undefined) continue;
        const list = results.get(variant.key) ?? [];
        list.push(sample);
        results.set(variant.key, list);
        process.stdout.write(
          `${variant.key} #${run + 1}: first ${sample.firstMs.toFixed(0)} ms, all ${sample.allMs.toFixed(0)} ms; RSS ${sample.early.rss.toFixed(1)} then ${sample.settled.rss.toFixed(1)} MiB, anonymous ${sample.settled.anonymous.toFixed(1)} MiB, peak ${sample.settled.peak.toFixed(1)} MiB\n`,
        );
      }
    }
  } finally {
    await cleanup();
  }

  const mib = (v: number) => v.toFixed(1);
  const msf = (v: number) => v.toFixed(0);
  const rows = variants.map((v) => {
    const s = results.get(v.key) ?? [];
    const cell = (f: (x: Sample) => number, format: (n: number) => string) =>
      spread(s.map(f), format);
    return [
      v.label,
      cell((x) => x.early.rss, mib),
      cell((x) => x.settled.rss, mib),
      cell((x) => x.settled.anonymous, mib),
      cell((x) => x.settled.peak, mib),
      cell((x) => x.firstMs, msf),
      cell((x) => x.allMs, msf),
    ].join(" | ");
  });
  const table = [
    `| variant | RSS MiB, 3 s after the 10th file | RSS MiB, ${idleMs / 1000} s after (settled) | Anonymous MiB, settled | peak RSS (VmHWM) MiB | spawn → first file ms | spawn → 10th file ms |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) => `| ${r} |`),
  ].join("\n");
  const phaseRows = variants.flatMap((v) => {
    const s = (results.get(v.key) ?? []).flatMap((x) =>
      x.phases === undefined ? [] : [{ ...x.phases, first: x.firstMs }],
    );
    if (s.length === 0) return [];
    return [
      `| ${v.label} | ${spread(
        s.map((x) => x.starting),
        msf,
      )} | ${spread(
        s.map((x) => x.watching - x.starting),
        msf,
      )} | ${spread(
        s.map((x) => x.first - x.watching),
        msf,
      )} |`,
    ];
  });
  const phaseTable = [
    '| variant | spawn → "agent starting" (node\'s start, modules, config, state file) ms | → "watching" (connection, WatchSecrets, first message) ms | → first file (10 reads in parallel, the file written) ms |',
    "| --- | ---: | ---: | ---: |",
    ...phaseRows,
  ].join("\n");
  const bare = results.get("node");
  const bundle = results.get("bundle");
  const verdicts: string[] = [];
  if (bundle !== undefined) {
    const of = (list: Sample[], f: (x: Sample) => number) => median(list.map(f));
    const rss = of(bundle, (x) => x.settled.rss);
    const first = of(bundle, (x) => x.firstMs);
    const share =
      bare === undefined
        ? ""
        : `; bare node in the same run: ${mib(of(bare, (x) => x.settled.rss))} MiB, so the agent's own share is ${mib(rss - of(bare, (x) => x.settled.rss))} MiB of RSS, ${mib(of(bundle, (x) => x.settled.anonymous) - of(bare, (x) => x.settled.anonymous))} MiB of it anonymous`;
    verdicts.push(
      `- Settled idle RSS of the bundle, median ${mib(rss)} MiB, against the goal of 50 MiB: ${rss <= 50 ? "met" : "missed"}${share}. 3 s after the 10th file, before V8 gives back its young generation: ${mib(of(bundle, (x) => x.early.rss))} MiB.`,
      `- Spawn to first file of the bundle, median ${msf(first)} ms, against the goal of 300 ms: ${first <= 300 ? "met" : "missed"}${bare === undefined ? "" : ` (bare node writing the files itself: ${msf(of(bare, (x) => x.firstMs))} ms)`}.`,
    );
  }
  const loadAfter = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const commit = shell("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = shell("git", ["status", "--porcelain", "--", "packages", "bench"]);
  const section = `## Sidecar agent: idle memory, start to files written, bundle size

Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} at commit \`${commit}\`${dirty === "" ? "" : " (with uncommitted changes)"}, by \`node --import tsx bench/agent-sidecar.ts${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(" ")}` : ""}\`.

- \`nproc\`: ${shell("nproc", [])}; Node ${process.version}
- load average before ${loadBefore}, after ${loadAfter} (other work shared the machine: timings are noisy, memory is not)
- \`free -h\`:

\`\`\`
${shell("free", ["-h"])}
\`\`\`

A server from its build (\`node packages/server/bin/coffer-server.js\`, embedded database) holds 10 secrets of 48 bytes; a \`secret_access\` token; Connect over HTTP/2 (the agent's default). Each variant started once to warm up (not counted: a running server has served before, and the page cache holds node and the agent's files), then ${runs} times, interleaved, each on a fresh folder and state file, at its default log level (info). Times from spawn() to the destination file renamed into place (inotify). Memory from /proc, 3 s and ${idleMs / 1000} s after the 10th file (V8's memory reducer gives back the young generation that the start grew about 8 s after allocation stops: the settled figure is what a sidecar costs over hours): VmRSS, the Anonymous pages of smaps_rollup (RSS also counts the node binary's file-backed pages, shared by every node process on the machine), and VmHWM. min / median / max. The tsx variant runs every workspace package from its TypeScript sources (\`--conditions=@coffer/source\`), as the agent ran before the packages were built.

${table}

Where the start goes, from the agent's own log lines (pino's millisecond times, against the wall clock at spawn):

${phaseTable}

Bundle \`packages/agent/dist/coffer-agent.mjs\`: ${bundleBytes} bytes (${(bundleBytes / 1024).toFixed(0)} KiB).

${verdicts.join("\n")}
`;
  console.log(`\n${table}\n\n${phaseTable}\n\nbundle: ${bundleBytes} bytes`);
  if (!values["no-write"]) {
    await writeSection(path.join(REPO_ROOT, "bench/RESULTS.md"), "agent-sidecar", section);
  }
}

await main();
