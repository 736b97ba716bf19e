/**
 * The web console's weight and first load (issue 14):
 *
 *   npm run build && node --import tsx bench/console.ts [--loads 15] [--secrets 1000] [--no-write]
 *
 * (a) Its JavaScript, gzipped (level 9, as a server or CDN would send it):
 * every packages/console/dist/assets/*.js summed, and the largest chunk,
 * against the budget of bench/console-bundle.ts, which alone checks it
 * (test/console/bundle-budget.test.ts runs it, so the test suite fails on a
 * bundle that grew past its budget).
 *
 * (b) The first load of the Secrets screen with 1,000 secrets, in the same
 * headless Chromium the browser tests drive (Debian's /usr/bin/chromium,
 * playwright-core): a real server (`coffer-server` through tsx, as `npm
 * start` runs it) on the embedded PGlite, a project with `--secrets`
 * secrets created over gRPC, then `--loads` page loads of its Secrets
 * screen, each in a fresh browser context (empty HTTP cache: a cold load)
 * and each again as a reload (warm cache), timed from navigation start to
 * the first row of the list in the DOM, recorded in the page by a
 * MutationObserver installed before any of the page's scripts run. The
 * folder view of the folder holding the secrets is timed the same way.
 * Baselines, in the same run: the same screens of a project with 10
 * secrets, and the sign-in page (index.html and its assets, no API call)
 * to its form.
 *
 * Writes the `console` section of bench/RESULTS.md unless --no-write.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { AdminService } from "@coffer/api";
import { createCofferClient, createCofferTransport } from "@coffer/client";
import { createClient } from "@connectrpc/connect";
import { type Browser, chromium } from "playwright-core";
import { budgetLines, measureBundle } from "./console-bundle.ts";
import { cleanup, cleanupOnSignals, onCleanup } from "./support/cleanup.ts";
import { serverSettings, startCoffer } from "./support/coffer.ts";
import { REPO_ROOT } from "./support/processes.ts";
import { writeSection } from "./support/results.ts";
import { bytes, ms, percentile } from "./support/stats.ts";

const CHROMIUM = process.env.COFFER_CHROMIUM ?? "/usr/bin/chromium";

// --- First load ---------------------------------------------------------

/**
 * Runs in the page before its scripts (through DevTools, so the page's CSP
 * does not apply): records when the first element matching a selector is
 * added, relative to navigation start.
 */
const FIRST_ROW_PROBE = `(() => {
  const marks = {};
  window.__benchMarks = marks;
  const probes = {
    // A row that links to a secret: the list (or folder) has rendered its data.
    row: "table tbody tr a[href*='/secrets/']",
    signIn: "input[type=password], input[autocomplete=off]",
  };
  const check = () => {
    for (const [name, selector] of Object.entries(probes)) {
      if (marks[name] === undefined && document.querySelector(selector)) marks[name] = performance.now();
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
})();`;

interface LoadSample {
  cold: number;
  warm: number;
}

function tokenKeyScript(key: string, token: string): string {
  return `try { sessionStorage.setItem(${JSON.stringify(key)}, ${JSON.stringify(token)}); } catch {}`;
}

/**
 * `loads` cold loads (a fresh context each) of `url`, each followed by a
 * warm reload, until the `mark` probe fires; milliseconds from navigation start.
 */
async function timeLoads(
  browser: Browser,
  url: string,
  mark: "row" | "signIn",
  loads: number,
  signedIn: string | undefined,
): Promise<LoadSample[]> {
  const samples: LoadSample[] = [];
  for (let i = 0; i < loads + 1; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    if (signedIn !== undefined) await context.addInitScript(signedIn);
    await context.addInitScript(FIRST_ROW_PROBE);
    const page = await context.newPage();
    const once = async () => {
      // A function, not a string: a string predicate is eval'd in the page, which its CSP forbids.
      await page.waitForFunction(
        (name) =>
          (globalThis as { __benchMarks?: Record<string, number> }).__benchMarks?.[name] !==
          undefined,
        mark,
        { timeout: 30_000, polling: 50 },
      );
      return (await page.evaluate(`window.__benchMarks.${mark}`)) as number;
    };
    await page.goto(url);
    const cold = await once();
    await page.reload();
    const warm = await once();
    await context.close();
    // The first load warms the server and the browser: not counted.
    if (i > 0) samples.push({ cold, warm });
  }
  return samples;
}

function stat(values: number[]): { p50: number; p95: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** How the console is addressed: its routes, and where it keeps the token. */
export interface ConsoleRoutes {
  /** The sessionStorage key holding the token. */
  tokenKey: string;
  /** The Secrets screen's flat list of a project in a region. */
  list(projectId: string, region: string): string;
  /** The folder view of `folder`. */
  folder(projectId: string, region: string, folder: string): string;
}

/** The console's routes (packages/console/src/router.tsx, search.ts) and its token key (session/session.ts). */
const ROUTES: ConsoleRoutes = {
  tokenKey: "coffer.session",
  list: (projectId, region) => `/p/${projectId}/${region}/secrets?view=list`,
  folder: (projectId, region, folder) =>
    `/p/${projectId}/${region}/secrets?view=folders&path=${encodeURIComponent(folder)}`,
};

type Row = { cold: { p50: number }; warm: { p50: number } } | undefined;

/** "+12.3 ms": the p50 of `a` minus that of `b`. */
function delta(a: Row, b: Row, which: "cold" | "warm"): string {
  if (a === undefined || b === undefined) return "-";
  const d = a[which].p50 - b[which].p50;
  return `${d >= 0 ? "+" : ""}${ms(d)} ms`;
}

function sh(cmd: string, argv: string[]): string {
  try {
    return execFileSync(cmd, argv, { encoding: "utf8", cwd: REPO_ROOT }).trim();
  } catch {
    return "?";
  }
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      loads: { type: "string", default: "15" },
      secrets: { type: "string", default: "1000" },
      "no-write": { type: "boolean", default: false },
    },
  });
  const bundle = measureBundle();
  const budget = budgetLines(bundle);

  cleanupOnSignals();
  const loadAtStart = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  const loads = Number(args.loads);
  const secretCount = Number(args.secrets);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "coffer-bench-console-"));
  const settings = serverSettings("", dataDir);
  const region = "fr-par";
  const server = await startCoffer("coffer-console", settings, {
    embedded: true,
    logFile: path.join(dataDir, "server.log"),
    env: { COFFER_REGIONS: region, COFFER_LOG_LEVEL: "warn" },
  });
  const admin = createClient(
    AdminService,
    createCofferTransport({ url: server.grpcUrl, protocol: "grpc", token: settings.adminToken }),
  );
  const secrets = createCofferClient({
    url: server.grpcUrl,
    protocol: "grpc",
    token: settings.adminToken,
  });
  const folder = "/bench/load";
  const seed = async (count: number) => {
    const { project } = await admin.createProject({
      name: `bench-${count}-${randomBytes(3).toString("hex")}`,
    });
    const projectId = project?.id as string;
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < count) {
          const i = next++;
          await secrets.createSecret({
            region,
            projectId,
            path: folder,
            name: `secret-${String(i).padStart(4, "0")}`,
            tags: [`group-${i % 10}`],
            firstVersion: { data: Buffer.from(`value-${i}`) },
          });
        }
      }),
    );
    console.log(`created ${count} secrets in ${ms(performance.now() - started)} ms`);
    return projectId;
  };
  const big = await seed(secretCount);
  const small = await seed(10);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  onCleanup("close chromium", () => browser.close());
  const signedIn = tokenKeyScript(ROUTES.tokenKey, settings.adminToken);
  const base = server.url;
  const cases: [string, string, "row" | "signIn", string | undefined][] = [
    [
      "sign-in page (index.html and assets, no API call) → its form",
      `${base}/`,
      "signIn",
      undefined,
    ],
    [`Secrets list, 10 secrets → first row`, base + ROUTES.list(small, region), "row", signedIn],
    [
      `Secrets list, ${secretCount.toLocaleString("en-US")} secrets → first row`,
      base + ROUTES.list(big, region),
      "row",
      signedIn,
    ],
    [
      `folder view of ${folder}, 10 secrets → first row`,
      base + ROUTES.folder(small, region, folder),
      "row",
      signedIn,
    ],
    [
      `folder view of ${folder}, ${secretCount.toLocaleString("en-US")} secrets → first row`,
      base + ROUTES.folder(big, region, folder),
      "row",
      signedIn,
    ],
  ];
  const results: { label: string; cold: ReturnType<typeof stat>; warm: ReturnType<typeof stat> }[] =
    [];
  for (const [label, url, mark, script] of cases) {
    const samples = await timeLoads(browser, url, mark, loads, script);
    const row = {
      label,
      cold: stat(samples.map((s) => s.cold)),
      warm: stat(samples.map((s) => s.warm)),
    };
    results.push(row);
    console.log(
      `${label}: cold p50 ${ms(row.cold.p50)} p95 ${ms(row.cold.p95)}; warm p50 ${ms(row.warm.p50)} p95 ${ms(row.warm.p95)}`,
    );
  }
  await cleanup();

  const commit = sh("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--", "packages/console", "packages/server"]);
  const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  const body = [
    "## Web console: JavaScript weight, first load of the Secrets screen",
    "",
    `Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} at commit \`${commit}\`${dirty ? " (with uncommitted changes under packages/console or packages/server)" : ""}, by \`node --import tsx bench/console.ts --loads ${loads} --secrets ${secretCount}\`.`,
    "",
    `- CPU: ${os.cpus().length} × ${model}; RAM ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB; Linux ${os.release()}`,
    `- Load average at the start: ${loadAtStart}, at the end: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (the machine is shared; other processes ran)`,
    `- Node ${process.version}; Chromium ${browser.version()} headless (${CHROMIUM}), playwright-core; the server on the embedded PGlite, on the same machine`,
    "",
    "### JavaScript, gzipped (level 9), against the budget",
    "",
    `${bundle.chunks.length} chunks in packages/console/dist/assets, ${bytes(bundle.totalRaw)} before compression. \`node --import tsx bench/console-bundle.ts\` (run by test/console/bundle-budget.test.ts; the budget and its reason are stated there) fails when a figure is over its budget.`,
    "",
    "| what | gzipped | budget | verdict |",
    "| --- | ---: | ---: | --- |",
    ...budget.lines,
    "",
    "| chunk | raw | gzipped |",
    "| --- | ---: | ---: |",
    ...[...bundle.chunks, ...bundle.css].map(
      (c) => `| ${c.name} | ${bytes(c.raw)} | ${bytes(c.gzip)} |`,
    ),
    "",
    "### First load, navigation start → first row in the DOM",
    "",
    `${loads} loads per row (after one unmeasured; with so few, p95 is close to the slowest), each in a fresh browser context (cold: empty HTTP cache) and then reloaded (warm: assets from cache); the token is put in sessionStorage before the page's scripts run, as after a sign-in. Milliseconds.`,
    "",
    "Both views show a page of 50 rows (the console asks ListSecrets and BrowseSecrets for 50), so the number of secrets in the project changes the server's query, not what the browser renders. " +
      `The 1,000-secret list against the 10-secret one: cold p50 ${delta(results[2], results[1], "cold")}, warm p50 ${delta(results[2], results[1], "warm")}; the folder view: cold p50 ${delta(results[4], results[3], "cold")}, warm p50 ${delta(results[4], results[3], "warm")}. ` +
      "The sign-in page, which makes no API call, is the floor: what loading and running the JavaScript costs.",
    "",
    "| page | cold p50 | cold p95 | cold min / max | warm p50 | warm p95 | warm min / max |",
    "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ...results.map(
      (r) =>
        `| ${r.label} | ${ms(r.cold.p50)} | ${ms(r.cold.p95)} | ${ms(r.cold.min)} / ${ms(r.cold.max)} | ${ms(r.warm.p50)} | ${ms(r.warm.p95)} | ${ms(r.warm.min)} / ${ms(r.warm.max)} |`,
    ),
  ].join("\n");
  if (!args["no-write"]) {
    await writeSection(path.join(REPO_ROOT, "bench/RESULTS.md"), "console", body);
    console.log("wrote the console section of bench/RESULTS.md");
  } else {
    console.log(body);
  }
}

main().catch(async (err) => {
  console.error(err);
  await cleanup();
  process.exit(1);
});
