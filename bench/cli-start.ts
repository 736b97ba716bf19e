/**
 * How long a `coffer` command takes, from spawn to exit, against a bare
 * `node -e 0` measured in the same run (issue 13's goal: within 2.5× of it):
 * `coffer --version`, and `coffer secret get <path>` against a local server
 * (`packages/server/bin/coffer-server.js`, from its build, on an embedded
 * database in a temporary folder, with a project, a read-only token and a
 * secret created first; the command runs with that token). The CLI runs
 *
 * - as installed: the package's bin, `packages/cli/bin/coffer.js`, which runs
 *   the bundle `npm run build` makes (dist/coffer.mjs);
 * - through tsx from this checkout's sources (`node --import tsx
 *   packages/cli/src/main.ts`; the other packages from their builds);
 * - and, unless `--before none`, as the CLI of the `--before` commit (by
 *   default where this branch left i13): its compiled dist/ (every command
 *   imported up front), and the tsx path of before issue 13, its sources
 *   with every package from its `.ts` (`node --conditions=@coffer/source
 *   --import tsx src/main.ts`). That commit's packages/cli is extracted with
 *   `git archive` into a temporary folder of bench/ (there it resolves this
 *   checkout's node_modules) and compiled; the folder is removed at the end.
 *
 * Every process runs `--runs` times, interleaved (one run of every case,
 * then the next round), after one warm-up run each, and is reported as
 * min / median / max. The machine may be shared: the min is the figure
 * least affected by what else runs. Writes the `cli-start` section of
 * bench/RESULTS.md (not with `--no-write`).
 *
 *   npm run build && node --import tsx bench/cli-start.ts [--runs 10] [--before REV|none] [--no-write]
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { cleanup, cleanupOnSignals, onCleanup } from "./support/cleanup.ts";
import { Child, REPO_ROOT, TSX_LOADER } from "./support/processes.ts";
import { writeSection } from "./support/results.ts";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    before: { type: "string" },
    "no-write": { type: "boolean", default: false },
  },
});
const RUNS = Number(flags.runs);
if (!Number.isInteger(RUNS) || RUNS < 5) {
  throw new Error("--runs must be a whole number, at least 5");
}

const CLI_BIN = path.join(REPO_ROOT, "packages/cli/bin/coffer.js");
const CLI_SRC = path.join(REPO_ROOT, "packages/cli/src/main.ts");
const CLI_DIST = path.join(REPO_ROOT, "packages/cli/dist");
const SERVER_BIN = path.join(REPO_ROOT, "packages/server/bin/coffer-server.js");
const SECRET = "/bench/db";

const git = (...args: string[]) =>
  execFileSync("git", args, { cwd: REPO_ROOT, encoding: "utf8" }).trim();

/** One way of running the CLI: the node arguments before the CLI's own. */
interface Variant {
  label: string;
  node: string[];
}

/** One measured process, and its times in ms. */
interface Case {
  command: string;
  variant: string;
  argv: string[];
  times: number[];
}

/** The environment of every process: the runner's, less its COFFER_* variables, plus `extra`. */
function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("COFFER_")),
  );
  return { ...env, ...extra };
}

/** Runs `node ...argv` to its end: its wall time in ms, exit code and output. */
function timed(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, argv, { cwd: REPO_ROOT, env, stdio: "pipe" });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.once("error", reject);
    child.once("close", (code) => {
      resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, code, out, err });
    });
  });
}

/**
 * The CLI of `rev`, extracted into a temporary folder of bench/ and compiled:
 * its bin (dist/), and its sources with every package from its `.ts`.
 */
async function cliAt(rev: string): Promise<Variant[]> {
  const commit = git("rev-parse", "--short", rev);
  const dir = await mkdtemp(path.join(REPO_ROOT, "bench", ".cli-start-before-"));
  onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const tar = path.join(dir, "cli.tar");
  git("archive", "--output", tar, commit, "packages/cli");
  execFileSync("tar", ["-x", "-f", tar, "-C", dir, "--strip-components=2"]);
  // At the depth of packages/cli: its tsconfig extends ../../, and
  // node_modules resolves from the repository's root.
  process.stdout.write(`compiling the CLI of ${commit} in ${path.relative(REPO_ROOT, dir)}\n`);
  execFileSync(process.execPath, [path.join(REPO_ROOT, "scripts/build-package.mjs")], {
    cwd: dir,
    stdio: ["ignore", "ignore", "inherit"],
  });
  return [
    {
      label: `${commit}, compiled (dist/): every command imported up front`,
      node: [path.join(dir, "bin/coffer.js")],
    },
    {
      label: `${commit}, tsx path of before issue 13: sources, every package from .ts`,
      node: ["--conditions=@coffer/source", "--import", TSX_LOADER, path.join(dir, "src/main.ts")],
    },
  ];
}

/** The server from its build on an embedded database in `dir`: its Connect URL and admin token. */
async function startServer(dir: string): Promise<{ url: string; adminToken: string }> {
  const server = new Child("coffer-server", [SERVER_BIN], {
    env: environment({
      COFFER_DATA_DIR: path.join(dir, "data"),
      COFFER_GRPC_LISTEN: "127.0.0.1:0",
      COFFER_HTTP_LISTEN: "127.0.0.1:0",
    }),
    logFile: path.join(dir, "server.log"),
  });
  onCleanup("stop the server", async () => {
    await server.stop();
  });
  // The first start prints the admin token on stderr, alone on its line, then serves.
  const token = server.waitForLine((l) => /^\s+coffer_[0-9A-Za-z]+$/.test(l), 180_000);
  const serving = server.waitForLine((l) => l.includes("coffer is serving"), 180_000);
  const adminToken = (await token).trim();
  const { http } = JSON.parse(await serving) as { http: string };
  return { url: `http://${http}`, adminToken };
}

/** Total size in bytes of the files in `dir` (recursively) whose name ends with `suffix`. */
async function sizeOf(dir: string, suffix: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true })) {
    if (entry.endsWith(suffix)) total += statSync(path.join(dir, entry)).size;
  }
  return total;
}

const ms = (v: number) => `${Math.round(v)}`;
const ratio = (v: number, base: number) => `${(v / base).toFixed(1)}×`;

async function main(): Promise<void> {
  cleanupOnSignals();
  if (!existsSync(path.join(CLI_DIST, "coffer.mjs"))) {
    throw new Error("the CLI is not built (no packages/cli/dist/coffer.mjs): run `npm run build`");
  }
  const loadAtStart = os.loadavg();
  const before =
    flags.before === "none"
      ? []
      : await cliAt(flags.before ?? git("merge-base", "HEAD", "i13")).catch((err: Error) => {
          process.stderr.write(`no "before" rows: ${err.message}\n`);
          return [];
        });
  const variants: Variant[] = [
    { label: "this commit, as installed: bin/coffer.js (the bundle)", node: [CLI_BIN] },
    { label: "this commit, tsx from the sources", node: ["--import", TSX_LOADER, CLI_SRC] },
    ...before,
  ];

  const dir = await mkdtemp(path.join(os.tmpdir(), "coffer-cli-start-"));
  onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const server = await startServer(dir);
  const installed = variants[0] as Variant;
  const admin = environment({
    COFFER_URL: server.url,
    COFFER_TOKEN: server.adminToken,
    COFFER_CONFIG: path.join(dir, "no-profile.json"),
  });
  const cli = async (args: string[], env: NodeJS.ProcessEnv) => {
    const r = await timed([...installed.node, ...args], env);
    if (r.code !== 0) throw new Error(`coffer ${args.join(" ")} exited ${r.code}\n${r.err}`);
    return r.out.trim();
  };
  const project = await cli(["project", "create", "bench", "-o", "json"], admin);
  const projectId = (JSON.parse(project) as { project: { id: string } }).project.id;
  const inProject = { ...admin, COFFER_PROJECT: projectId };
  await cli(["secret", "create", SECRET, "--data", "not-a-real-password"], inProject);
  const reader = await cli(["token", "create", "cli-start", "--grant", "read_only"], inProject);
  const env = { ...inProject, COFFER_TOKEN: reader };

  const cases: Case[] = [
    { command: "node -e 0", variant: "baseline", argv: ["-e", "0"], times: [] },
  ];
  for (const command of [["--version"], ["secret", "get", SECRET]]) {
    for (const v of variants) {
      cases.push({
        command: `coffer ${command.join(" ")}`,
        variant: v.label,
        argv: [...v.node, ...command],
        times: [],
      });
    }
  }
  // One warm-up run each (disk cache, tsx's cache), which also checks that
  // every variant succeeds and prints what the installed CLI prints.
  const expected = new Map<string, string>();
  for (const c of cases) {
    const r = await timed(c.argv, env);
    if (r.code !== 0) throw new Error(`${c.variant}: ${c.command} exited ${r.code}\n${r.err}`);
    if (!expected.has(c.command)) expected.set(c.command, r.out);
    if (r.out !== expected.get(c.command)) {
      throw new Error(
        `${c.variant}: ${c.command} printed\n${r.out}\nnot\n${expected.get(c.command)}`,
      );
    }
  }
  for (let round = 0; round < RUNS; round++) {
    for (const c of cases) c.times.push((await timed(c.argv, env)).ms);
    process.stdout.write(`round ${round + 1}/${RUNS}\n`);
  }
  const loadAtEnd = os.loadavg();

  const stats = (c: Case) => {
    const t = [...c.times].sort((a, b) => a - b);
    return { min: t[0] ?? 0, median: t[Math.floor((t.length - 1) / 2)] ?? 0, max: t.at(-1) ?? 0 };
  };
  const base = stats(cases[0] as Case);
  const table = [
    "| command | CLI | min ms | median ms | max ms | min ÷ node -e 0 | median ÷ node -e 0 |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ...cases.map((c) => {
      const s = stats(c);
      return `| \`${c.command}\` | ${c.variant} | ${ms(s.min)} | ${ms(s.median)} | ${ms(s.max)} | ${ratio(s.min, base.min)} | ${ratio(s.median, base.median)} |`;
    }),
  ].join("\n");
  process.stdout.write(`${table}\n`);
  if (flags["no-write"]) return;

  const commit = git("rev-parse", "--short", "HEAD");
  const dirty =
    git("status", "--porcelain", "--untracked-files=no") === "" ? "" : " (with changes)";
  const free = execFileSync("free", ["-h"], { encoding: "utf8" }).trimEnd();
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(" ");
  const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  const entry = statSync(path.join(CLI_DIST, "coffer.mjs")).size;
  const chunks = await sizeOf(path.join(CLI_DIST, "chunks"), ".mjs");
  await writeSection(
    path.join(REPO_ROOT, "bench/RESULTS.md"),
    "cli-start",
    `## CLI start: \`coffer --version\` and \`coffer secret get\`

Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} at commit \`${commit}\`${dirty}, by \`node --import tsx bench/cli-start.ts --runs ${RUNS}${flags.before ? ` --before ${flags.before}` : ""}\`.

- ${os.availableParallelism()} CPUs (nproc), ${os.cpus()[0]?.model ?? "unknown CPU"}; Node ${process.version}
- load average at the start ${load(loadAtStart)}, at the end ${load(loadAtEnd)} (other work shared the machine: read the min)
- \`free -h\`:

\`\`\`
${free}
\`\`\`

Wall time of each process, spawn to exit, ${RUNS} runs each, interleaved, after one warm-up run. \`coffer secret get ${SECRET}\` asks a local \`coffer-server\` (its build, embedded database, per-call logs on) with a read-only token: two calls (the path's id, then the secret). The bundle: dist/coffer.mjs ${kib(entry)}, with its chunks ${kib(entry + chunks)}.

${table}`,
  );
}

main()
  .catch((err) => {
    process.exitCode = 1;
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
  })
  .finally(() => cleanup());
