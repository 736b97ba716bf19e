import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Page,
  type Request,
  type Response,
} from "playwright-core";
import { REPO_ROOT } from "./tsx-process.ts";

/**
 * The browser end-to-end tests of the console (test/console): Debian's
 * Chromium driven by playwright-core, one browser per test file and a fresh
 * context (no storage, no cache) per test. Each step of a test saves a
 * screenshot, runs axe-core in the page and checks that the page logged no
 * error and broke no Content-Security-Policy rule.
 */

/** Debian's Chromium (`apt-get install chromium`); COFFER_CHROMIUM overrides it. */
export const CHROMIUM_PATH = process.env.COFFER_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Why the browser tests cannot run here, or undefined when they can. Under
 * CI a missing Chromium fails the run instead (.ci/run installs it).
 */
export const noBrowserReason: string | undefined = existsSync(CHROMIUM_PATH)
  ? undefined
  : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`;
if (process.env.CI && noBrowserReason !== undefined) {
  throw new Error(`CI is set but the console's browser tests cannot run: ${noBrowserReason}`);
}

/** The viewport of every page: the README's screenshots are taken at this size. */
export const VIEWPORT = { width: 1280, height: 800 } as const;

/** Launches headless Chromium. Close it in afterAll. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
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
}

// --- The console's build -------------------------------------------------

export const CONSOLE_DIR = path.join(REPO_ROOT, "packages/console");
export const CONSOLE_DIST = path.join(CONSOLE_DIR, "dist");

function newestMtime(entry: string): number {
  const stat = statSync(entry, { throwIfNoEntry: false });
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const name of readdirSync(entry)) {
    if (name === "node_modules" || name === "dist") continue;
    newest = Math.max(newest, newestMtime(path.join(entry, name)));
  }
  return newest;
}

/**
 * Builds the console (`npm run build` in packages/console) when dist/ is missing
 * or older than its sources, so that the server serves what the branch holds
 * (CI's `npm run build` has built it already). Two test files may call it
 * at once: a lock folder lets one build while the other waits.
 */
export async function ensureConsoleBuilt(): Promise<void> {
  const index = path.join(CONSOLE_DIST, "index.html");
  const sources = ["src", "index.html", "vite.config.ts", "package.json", "public"].map((f) =>
    path.join(CONSOLE_DIR, f),
  );
  const stale = () =>
    !existsSync(index) || Math.max(...sources.map(newestMtime)) > statSync(index).mtimeMs;
  if (!stale()) return;
  const lock = path.join(CONSOLE_DIR, ".build-lock");
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // A lock older than the deadline was left by a killed run.
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (age > 180_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`waited too long for ${lock}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    if (!stale()) return;
    // The package's own build (vite, then its build-info.json), as `npm run build` runs it.
    const built = spawnSync("npm", ["run", "build", "--silent"], {
      cwd: CONSOLE_DIR,
      encoding: "utf8",
    });
    if (built.status !== 0) {
      throw new Error(
        `the console's build failed (${built.status}):\n${built.stdout}\n${built.stderr}`,
      );
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

// --- axe-core --------------------------------------------------------------

const require = createRequire(import.meta.url);
let axeSource: string | undefined;

/** One axe-core violation, as reported by {@link runAxe}. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * Runs axe-core in the page and returns its violations of impact serious or
 * critical. The script goes in through DevTools (`page.evaluate`), which the
 * page's Content-Security-Policy does not govern, so the CSP stays on for
 * the page's own code: no `bypassCSP`, no script tag.
 */
export async function runAxe(page: Page): Promise<AxeViolation[]> {
  axeSource ??= readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  const violations = (await page.evaluate(
    `${axeSource}
;axe.run(document, { resultTypes: ["violations"] }).then((r) =>
  r.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")),
  })))`,
  )) as AxeViolation[];
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** A readable list of axe violations, for an assertion's message. */
export function describeViolations(violations: AxeViolation[]): string {
  return violations
    .map((v) => `${v.impact} ${v.id}: ${v.help}\n    at ${v.targets.slice(0, 5).join("\n    at ")}`)
    .join("\n");
}

// --- One test's page ---------------------------------------------------------

/** Where the screenshots go: test/.output/console/<test>/<nn-step>.png (gitignored). */
export const OUTPUT_DIR = path.join(REPO_ROOT, "test/.output/console");

/**
 * COFFER_SCREENSHOTS_DIR=docs/console (relative to the repository) makes the
 * steps marked for the README write their screenshot there too, as
 * `<name>.png`: `COFFER_SCREENSHOTS_DIR=docs/console npx vitest run console/quickstart.test.ts`.
 */
const SCREENSHOTS_DIR = process.env.COFFER_SCREENSHOTS_DIR
  ? path.resolve(REPO_ROOT, process.env.COFFER_SCREENSHOTS_DIR)
  : undefined;

/** A CSP violation the page reported (`securitypolicyviolation`). */
export interface CspViolation {
  directive: string;
  blocked: string;
  source: string;
}

/** Options of {@link ConsoleSession.step}. */
export interface StepOptions {
  /** Run axe-core on the page (default true). */
  axe?: boolean;
  /** Also save the screenshot as docs/console/<readme>.png when COFFER_SCREENSHOTS_DIR is set. */
  readme?: string;
}

/**
 * One test's browser context and page, recording what the page does: the
 * console's errors and the page's exceptions, CSP violations, every URL
 * the main frame navigated to and every request's URL, and the responses of
 * the console's own documents and assets (for their headers).
 */
export class ConsoleSession {
  readonly errors: string[] = [];
  readonly cspViolations: CspViolation[] = [];
  /** Every URL the main frame was at, in order. */
  readonly urls: string[] = [];
  /** Every request the page made. */
  readonly requests: Request[] = [];
  /** Every response to a GET the page made, in order. */
  readonly responses: Response[] = [];
  /**
   * Substrings of console errors that a step expects (a refused call logs
   * the browser's "Failed to load resource" line): not counted as errors.
   */
  readonly allowedErrors: RegExp[] = [];
  #step = 0;

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    readonly baseUrl: string,
    readonly outputDir: string,
  ) {}

  /** A fresh context (no storage) and page on the console at `baseUrl`. */
  static async open(browser: Browser, baseUrl: string, testName: string): Promise<ConsoleSession> {
    const context = await browser.newContext({ viewport: VIEWPORT, baseURL: baseUrl });
    // A control that is not there fails the step in seconds, not after 30.
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    const outputDir = path.join(OUTPUT_DIR, slug(testName));
    rmSync(outputDir, { recursive: true, force: true });
    mkdirSync(outputDir, { recursive: true });
    const session = new ConsoleSession(context, page, baseUrl, outputDir);
    await page.exposeFunction("__cofferCspViolation", (v: CspViolation) => {
      session.cspViolations.push(v);
    });
    // Added through DevTools, not as a script in the page: the CSP stays whole.
    await context.addInitScript(`document.addEventListener("securitypolicyviolation", (e) => {
      window.__cofferCspViolation({ directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile + ":" + e.lineNumber });
    });`);
    page.on("console", (msg) => {
      if (msg.type() === "error") session.errors.push(`console: ${msg.text()}`);
    });
    page.on("pageerror", (err) => session.errors.push(`page error: ${err.message}`));
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) session.urls.push(frame.url());
    });
    context.on("request", (request) => session.requests.push(request));
    context.on("response", (response) => {
      if (response.request().method() === "GET") session.responses.push(response);
    });
    return session;
  }

  /** The errors and CSP violations so far that no step expected. */
  unexpectedErrors(): string[] {
    return [
      ...this.errors.filter((e) => !this.allowedErrors.some((re) => re.test(e))),
      ...this.cspViolations.map(
        (v) => `CSP violation: ${v.directive} blocked ${v.blocked || "(inline)"} at ${v.source}`,
      ),
    ];
  }

  /**
   * One step of a walk: saves a screenshot as <nn>-<name>.png, runs axe-core
   * (unless `axe: false`) and throws on a serious or critical violation, and
   * throws when the page logged an error or broke its CSP.
   */
  async step(name: string, options: StepOptions = {}): Promise<void> {
    this.#step += 1;
    const file = path.join(
      this.outputDir,
      `${String(this.#step).padStart(2, "0")}-${slug(name)}.png`,
    );
    // Let transitions and fonts settle so the picture shows what a person sees.
    await this.page.evaluate("document.fonts.ready.then(() => new Promise(requestAnimationFrame))");
    await this.page.screenshot({ path: file });
    if (SCREENSHOTS_DIR !== undefined && options.readme !== undefined) {
      mkdirSync(SCREENSHOTS_DIR, { recursive: true });
      copyFileSync(file, path.join(SCREENSHOTS_DIR, `${options.readme}.png`));
    }
    const problems = this.unexpectedErrors();
    if (problems.length > 0) {
      throw new Error(`step "${name}": the page reported:\n  ${problems.join("\n  ")}`);
    }
    if (options.axe !== false) {
      const violations = await runAxe(this.page);
      if (violations.length > 0) {
        throw new Error(
          `step "${name}": axe found serious or critical violations (screenshot ${file}):\n${describeViolations(violations)}`,
        );
      }
    }
  }

  /** Every URL the page was at or asked for: where no token or payload may appear. */
  allUrls(): string[] {
    return [...this.urls, this.page.url(), ...this.requests.map((r) => r.url())];
  }

  /** What the page keeps: sessionStorage, localStorage and cookies. */
  async storage(): Promise<{
    sessionStorage: Record<string, string>;
    localStorage: Record<string, string>;
    cookies: string[];
  }> {
    const stores = (await this.page.evaluate(`({
      sessionStorage: Object.fromEntries(Object.entries(sessionStorage)),
      localStorage: Object.fromEntries(Object.entries(localStorage)),
      documentCookie: document.cookie,
    })`)) as {
      sessionStorage: Record<string, string>;
      localStorage: Record<string, string>;
      documentCookie: string;
    };
    const cookies = (await this.context.cookies()).map((c) => `${c.name}=${c.value}`);
    if (stores.documentCookie !== "") cookies.push(stores.documentCookie);
    return { sessionStorage: stores.sessionStorage, localStorage: stores.localStorage, cookies };
  }

  /**
   * Closes the context; throws when the page reported an error or a CSP
   * violation after the last step (a step throws for those before it).
   */
  async close(): Promise<void> {
    const problems = this.unexpectedErrors();
    await this.context.close();
    if (problems.length > 0) {
      throw new Error(`the page reported, after its last step:\n  ${problems.join("\n  ")}`);
    }
  }
}

/** A file-name-safe form of a test or step name. */
export function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 80);
}

/**
 * The URLs among `urls` that carry any of `values`: in the URL's text as is
 * or URL-decoded, or inside a query parameter that decodes as base64 or
 * base64url (a Connect GET carries its request message so, at any offset).
 */
export function urlsCarrying(urls: string[], values: (string | Uint8Array)[]): string[] {
  const needles = values.map((v) => Buffer.from(v)).filter((b) => b.length >= 6);
  return urls.filter((u) => {
    const texts = [Buffer.from(u)];
    try {
      texts.push(Buffer.from(decodeURIComponent(u)));
    } catch {}
    try {
      for (const value of new URL(u).searchParams.values()) {
        texts.push(Buffer.from(value, "base64"));
      }
    } catch {}
    return needles.some((n) => texts.some((t) => t.includes(n)));
  });
}
