import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, type ServerProcess, spawnServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The README's steps, run as written and in order: every `sh`, `ts` and
 * `console` block of the sections in SECTIONS (the others need a second
 * database, a stopped server, files outside the repository or grpcurl, and
 * are checked by hand when the README changes; the npm scripts and files
 * their commands name are checked below).
 *
 * - `npm ci` is taken as done (this test runs from an installed checkout);
 *   `npm start` starts the server with the same command line (node --import
 *   tsx packages/server/src/main.ts, from the repository root), except that
 *   its data folder is a fresh temporary one rather than ./.coffer, and it
 *   listens on free ports, which the later blocks get in COFFER_URL as the
 *   README tells a user whose server is not on the default port.
 * - The admin token is read from the banner the server prints on stderr, as
 *   a user copies it, and `export COFFER_TOKEN=coffer_...` stands for that.
 * - A `sh` block runs in bash (errexit, pipefail) from the repository, as the
 *   README's commands do, and must exit 0 and print something; a `ts`
 *   block runs with tsx from a file in this repository, must exit 0 and
 *   print the lines its `// -> ` comments show; in a `console` block each `$`
 *   command (continued past lines ending in `\` or `|`) runs in bash, with
 *   what the earlier ones exported, and must print the lines shown under it,
 *   ids (UUIDs) and token values aside.
 * - A block preceded by `<!-- readme-test: not run: <reason> -->` is not run;
 *   that is only for blocks that cannot run here: today, the block that runs
 *   the whole test suite (this test is part of it), and grpcurl's.
 * - A block indented in a list item is read without its indentation.
 */

const SECTIONS = [
  "Run it",
  "A first session",
  "Tokens, roles and the audit trail",
  "The command line",
  "Using Coffer from TypeScript",
  "Health, reflection and metrics",
];
const NOT_RUN = /^<!-- readme-test: not run: (.+) -->$/;

interface Block {
  section: string;
  lang: string;
  code: string;
  /** The line of the opening fence, 1-based. */
  line: number;
  notRun?: string;
}

/** The fenced blocks of the given sections, in order. */
function readmeBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.startsWith("## ")) section = line.slice(3).trim();
    const fence = /^( *)```(\w*)$/.exec(line);
    if (fence === null) continue;
    const indent = fence[1] ?? "";
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== `${indent}\`\`\``; i++) {
      body.push((lines[i] ?? "").slice(indent.length));
    }
    if (!SECTIONS.includes(section)) continue;
    const marker = NOT_RUN.exec((lines[start - 1] ?? "").trim());
    blocks.push({
      section,
      lang: fence[2] ?? "",
      code: body.join("\n"),
      line: start + 1,
      ...(marker !== null && { notRun: marker[1] }),
    });
  }
  return blocks;
}

/** UUIDs and token values differ from run to run. */
const normalize = (text: string) =>
  text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<uuid>")
    .replace(/coffer_[0-9A-Za-z]{20,}/g, "<token>")
    .trimEnd();

/** `$ command` lines and the output shown under each. */
function consoleSteps(code: string): { command: string; output: string }[] {
  const steps: { command: string; output: string[] }[] = [];
  let continued = false;
  for (const line of code.split("\n")) {
    const last = steps.at(-1);
    if (continued && last !== undefined) last.command += `\n${line}`;
    else if (line.startsWith("$ ")) steps.push({ command: line.slice(2), output: [] });
    else if (steps.length === 0) throw new Error(`console block starts without "$ ": ${line}`);
    else last?.output.push(line);
    // A command goes on past a line ending in "\" or "|", as in a shell.
    continued = steps.at(-1)?.output.length === 0 && /[\\|]$/.test(line);
  }
  return steps.map((s) => ({ command: s.command, output: s.output.join("\n") }));
}

describe("the README, run as written", () => {
  const blocks = readmeBlocks(readFileSync(path.join(REPO_ROOT, "README.md"), "utf8"));
  let work: string | undefined;
  let server: ServerProcess | undefined;
  /** What the user's shell holds after the steps so far. */
  const env: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    work = await makeTempDir("readme");
    await mkdir(path.join(work, "home"));
    await mkdir(path.join(work, "cwd"));
    // A user's shell: no Coffer settings, a home of its own (no profile file),
    // node_modules/.bin on the PATH as the README suggests.
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith("COFFER_") && !k.startsWith("TEST_") && k !== "CI") env[k] = v;
    }
    env.HOME = path.join(work, "home");
    env.PATH = `${path.join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`;
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await removeTempDir(work);
  });

  it("finds blocks in every section it runs", () => {
    for (const section of SECTIONS) {
      expect(
        blocks.filter((b) => b.section === section && b.notRun === undefined),
        section,
      ).not.toHaveLength(0);
    }
  });

  it("names only npm scripts, commands and files that exist", () => {
    // What the sections not run above name too (benchmarks, the agent, key rotation...).
    const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
    const scripts = Object.keys(pkg.scripts ?? {});
    const named = [...readme.matchAll(/\bnpm (?:run\s+([\w:-]+)|(start|test)\b)/g)].map(
      (m) => m[1] ?? m[2] ?? "",
    );
    expect(named).toEqual(expect.arrayContaining(["start", "test", "bench", "bench:watch"]));
    for (const name of named) expect(scripts, `npm run ${name}`).toContain(name);
    const bins = [...readme.matchAll(/\b(coffer(?:-server|-agent)?) [a-z-]+/g)].map((m) => m[1]);
    for (const bin of new Set(bins)) {
      expect(existsSync(path.join(REPO_ROOT, "node_modules", ".bin", bin ?? "")), bin).toBe(true);
    }
    const files = [
      ...readme.matchAll(
        /\b(?:node\s+--import\s+tsx|bash)\s+((?:bench|packages|scripts|test)\/[\w./-]+)/g,
      ),
      ...readme.matchAll(/\]\((?!https?:)([^)#]+)\)/g),
    ].map((m) => m[1] ?? "");
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) expect(existsSync(path.join(REPO_ROOT, file)), file).toBe(true);
  });

  it("runs every block of its sections, in order", { timeout: 300_000 }, async () => {
    const cwd = path.join(work ?? "", "cwd");
    for (const block of blocks) {
      const where = `README.md:${block.line} (${block.section}, ${block.lang})`;
      if (block.notRun !== undefined) {
        console.log(`${where}: not run: ${block.notRun}`);
        continue;
      }
      if (block.lang === "sh" && /^npm (ci|start)\b/m.test(block.code)) {
        for (const raw of block.code.split("\n")) {
          const command = raw.replace(/#.*$/, "").trim();
          if (command === "npm ci") {
            expect(existsSync(path.join(REPO_ROOT, "node_modules")), where).toBe(true);
          } else if (command === "npm start") {
            server = await startAsNpmStart(path.join(work ?? "", "data"));
            env.COFFER_URL = server.httpUrl;
          } else if (command !== "") {
            throw new Error(`${where}: an install/start block holds another command: ${command}`);
          }
        }
        continue;
      }
      if (server === undefined) throw new Error(`${where}: runs before the server was started`);
      if (block.lang === "sh") {
        const r = spawnSync("bash", ["-euo", "pipefail", "-c", block.code], {
          cwd: REPO_ROOT,
          env,
          encoding: "utf8",
          timeout: 60_000,
        });
        expect(r.status, `${where}\n${r.stdout}\n${r.stderr}`).toBe(0);
        expect(r.stdout.trim(), where).not.toBe("");
      } else if (block.lang === "ts") {
        // In the repository, as the README says, so that @coffer/client resolves.
        const file = path.join(REPO_ROOT, "test", `.readme-${randomBytes(4).toString("hex")}.ts`);
        await writeFile(file, block.code);
        try {
          const r = spawnSync(process.execPath, ["--import", "tsx", file], {
            cwd: REPO_ROOT,
            env,
            encoding: "utf8",
            timeout: 120_000,
          });
          expect(r.status, `${where}\n${r.stdout}\n${r.stderr}`).toBe(0);
          expect(r.stderr, where).toBe("");
          // Each `// -> text` comment is a line the block prints, in order.
          const expected = [...block.code.matchAll(/\/\/ -> (.*)$/gm)].map((m) => m[1]);
          expect(expected.length, `${where}: no "// -> " output shown`).toBeGreaterThan(0);
          expect(r.stdout.trimEnd().split("\n"), where).toEqual(expected);
        } finally {
          await rm(file, { force: true });
        }
      } else if (block.lang === "console") {
        for (const step of consoleSteps(block.code)) {
          const command = step.command.replace(
            /^export COFFER_TOKEN=coffer_\.\.\.(\s+#.*)?$/,
            'export COFFER_TOKEN="$__README_TOKEN"',
          );
          // What a step sets, the next step sees, as in one shell (set -a exports
          // every variable, and the environment is carried over); stdout and
          // stderr interleave as on a terminal.
          const script = `set -a\n{\n${command}\n} 2>&1\n__status=$?\nenv -0 > "$__README_ENV"\nexit $__status`;
          const envFile = path.join(work ?? "", "env");
          const r = spawnSync("bash", ["-o", "pipefail", "-c", script], {
            cwd,
            env: { ...env, __README_TOKEN: env.README_TOKEN_VALUE, __README_ENV: envFile },
            encoding: "utf8",
            timeout: 60_000,
          });
          const shown = normalize(r.stdout);
          expect(shown, `${where}: $ ${step.command}`).toBe(normalize(step.output));
          for (const entry of readFileSync(envFile, "utf8").split("\0")) {
            const eq = entry.indexOf("=");
            if (eq <= 0) continue;
            const key = entry.slice(0, eq);
            if (key.startsWith("__README_") || key === "_" || key === "__status") continue;
            env[key] = entry.slice(eq + 1);
          }
        }
      } else {
        throw new Error(`${where}: a ${block.lang || "plain"} block cannot be run; mark it`);
      }
    }
  });

  /** The server as `npm start` runs it, on a fresh folder; the token read from its banner. */
  async function startAsNpmStart(dataDir: string): Promise<ServerProcess> {
    const s = spawnServer({
      cwd: REPO_ROOT,
      env: { COFFER_DATA_DIR: dataDir, COFFER_BOOTSTRAP_TOKEN: undefined },
    });
    await s.waitForReady();
    const token = /coffer_[0-9A-Za-z]{20,}/.exec(s.stderr)?.[0];
    if (token === undefined) throw new Error(`no admin token in the banner:\n${s.stderr}`);
    env.README_TOKEN_VALUE = token;
    env.COFFER_TOKEN = token;
    return s;
  }
});
