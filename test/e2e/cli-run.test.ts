import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { type CofferClient, createCofferClient, EphemeralAction, SecretType } from "@coffer/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * `coffer run` and `--generate` as people use them: real `coffer` processes
 * (`node --import tsx packages/cli/src/main.ts`) against a real server,
 * with `node -e` children that report what they see on a pipe. The values
 * are unique random strings, so that a scan of the working folder and the
 * temporary folder can tell whether any of them reached a disk.
 */

const CLI_MAIN = path.join(REPO_ROOT, "packages/cli/src/main.ts");
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const SLOW = 180_000;

/** A unique value no file can hold by chance. */
const unique = (label: string) => `${label}-${randomBytes(12).toString("hex")}`;

/** A running `coffer`, its output kept. */
interface Running {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves at exit with the code (or null and the signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for a stdout line matching `re` (one already written counts); returns it and when it came. */
  line(re: RegExp, timeoutMs?: number): Promise<{ text: string; at: number }>;
}

const live = new Set<ChildProcess>();

describe("coffer run and --generate against a real server", { timeout: SLOW }, () => {
  let dir: string | undefined;
  let work = "";
  let server: ServerProcess | undefined;
  let admin: CofferClient;
  let projectId = "";
  let env: Record<string, string> = {};
  /** Every secret value this file created, for the disk scan. */
  const values: string[] = [];
  const startedAt = Date.now();

  /** Starts `coffer args...` from the work folder, with the session's environment plus `extra`. */
  function start(args: string[], extra: Record<string, string> = {}, stdin?: string): Running {
    const childEnv: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith("COFFER_")) childEnv[key] = value;
    }
    Object.assign(childEnv, env, extra);
    const child = spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, ...args], {
      cwd: work,
      env: childEnv,
      stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    live.add(child);
    if (stdin !== undefined) child.stdin?.end(stdin);
    const stdout: string[] = [];
    const stderr: string[] = [];
    const waiters = new Set<() => void>();
    const lines = (stream: NodeJS.ReadableStream, into: string[]) => {
      let partial = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const p of parts) {
          into.push(p);
          stamps.set(into.length - 1 + (into === stdout ? 0 : 1e9), Date.now());
        }
        for (const w of waiters) w();
      });
      stream.on("end", () => {
        if (partial !== "") into.push(partial);
        for (const w of waiters) w();
      });
    };
    const stamps = new Map<number, number>();
    lines(child.stdout as NodeJS.ReadableStream, stdout);
    lines(child.stderr as NodeJS.ReadableStream, stderr);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("close", (code, signal) => {
        live.delete(child);
        for (const w of waiters) w();
        resolve({ code, signal });
      }),
    );
    let closed = false;
    void exited.then(() => {
      closed = true;
    });
    return {
      child,
      stdout,
      stderr,
      exited,
      line(re, timeoutMs = 30_000) {
        return new Promise((resolve, reject) => {
          let from = 0;
          const check = () => {
            for (; from < stdout.length; from++) {
              const text = stdout[from] as string;
              if (re.test(text)) {
                done();
                resolve({ text, at: stamps.get(from) ?? Date.now() });
                return;
              }
            }
            if (closed) {
              done();
              reject(new Error(`coffer exited without printing ${re}\n${stderr.join("\n")}`));
            }
          };
          const timer = setTimeout(() => {
            done();
            reject(new Error(`no line ${re} within ${timeoutMs} ms\n${stderr.join("\n")}`));
          }, timeoutMs);
          const done = () => {
            clearTimeout(timer);
            waiters.delete(check);
          };
          waiters.add(check);
          check();
        });
      },
    };
  }

  /** Runs `coffer args...` to its end. */
  async function coffer(args: string[], extra: Record<string, string> = {}, stdin?: string) {
    const r = start(args, extra, stdin);
    const timer = setTimeout(() => r.child.kill("SIGKILL"), 60_000);
    const exit = await r.exited;
    clearTimeout(timer);
    return { ...exit, out: r.stdout.join("\n"), err: r.stderr.join("\n") };
  }

  async function createSecret(
    folder: string,
    name: string,
    type: SecretType,
    payload: string,
    extra: { singleAccess?: boolean } = {},
  ): Promise<string> {
    const { secret } = await admin.createSecret({
      projectId,
      path: folder,
      name,
      type,
      ...(extra.singleAccess && {
        ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
      }),
      firstVersion: { data: Buffer.from(payload) },
    });
    return secret?.id ?? "";
  }

  beforeAll(async () => {
    dir = await makeTempDir("cli-run");
    work = path.join(dir, "work");
    await mkdir(work);
    server = await startServer({ env: { COFFER_DATA_DIR: path.join(dir, "server") } });
    admin = createCofferClient({ url: server.grpcUrl, protocol: "grpc", token: server.token });
    projectId = await server.createProject("run");
    env = {
      COFFER_URL: server.httpUrl,
      COFFER_TOKEN: server.token,
      COFFER_PROJECT: projectId,
      COFFER_CONFIG: path.join(work, "no-profile.json"),
      HOME: work,
    };
  });

  afterAll(async () => {
    for (const child of live) child.kill("SIGKILL");
    server?.kill();
    await server?.exited;
    await removeTempDir(dir);
  });

  /** A child that prints, as JSON, the variables whose names match `pattern`. */
  const printEnv = (pattern: string) => [
    process.execPath,
    "-e",
    `const o = {}; for (const k of Object.keys(process.env).sort()) if (new RegExp(${JSON.stringify(pattern)}).test(k)) o[k] = process.env[k]; console.log(JSON.stringify(o));`,
  ];

  it("puts every secret of the folder into the child's environment, by the documented names", async () => {
    const password = unique("pw");
    const apiUrl = unique("url");
    const dbPassword = unique("dbpw");
    values.push(password, apiUrl, dbPassword);
    await createSecret("/app", "db-password", SecretType.OPAQUE, password);
    await createSecret(
      "/app",
      "settings",
      SecretType.KEY_VALUE,
      JSON.stringify({ "api-url": apiUrl, retries: 3 }),
    );
    await createSecret(
      "/app",
      "orders",
      SecretType.DATABASE_CREDENTIALS,
      JSON.stringify({
        engine: "postgres",
        host: "db.internal",
        port: "5432",
        dbname: "orders",
        username: "app",
        password: dbPassword,
      }),
    );
    // Below the folder: --path reads one folder, not its subfolders.
    await createSecret("/app/deeper", "hidden", SecretType.OPAQUE, unique("hidden"));

    const r = await coffer(
      [
        "run",
        "--path",
        "/app",
        "--",
        ...printEnv("^(DB_|API_|RETRIES|ORDERS_|HIDDEN|COFFER_|KEEP)"),
      ],
      { DB_PASSWORD: "from-the-parent", KEEP_ME: "kept" },
    );
    expect(r.err).toBe(
      "coffer: running " +
        process.execPath +
        " with 9 variables from 3 secrets (overriding DB_PASSWORD from the environment)",
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      API_URL: apiUrl,
      DB_PASSWORD: password,
      KEEP_ME: "kept",
      ORDERS_DBNAME: "orders",
      ORDERS_ENGINE: "postgres",
      ORDERS_HOST: "db.internal",
      ORDERS_PASSWORD: dbPassword,
      ORDERS_PORT: "5432",
      ORDERS_USERNAME: "app",
      RETRIES: "3",
    });
    // No COFFER_* variable (the token least of all) reached the child.
    expect(r.out).not.toContain(server?.token as string);

    // --secret, by location and with --prefix; quiet.
    const one = await coffer([
      "run",
      "--secret",
      "/app/db-password",
      "--prefix",
      "MY_",
      "-q",
      "--",
      ...printEnv("^MY_"),
    ]);
    expect(one.err).toBe("");
    expect(JSON.parse(one.out)).toEqual({ MY_DB_PASSWORD: password });
  });

  it("works with a secret_access token by /path/name (--path needs a role that lists)", async () => {
    const made = await coffer(["token", "create", "runner", "--grant", "secret_access:/app"]);
    expect(made.code).toBe(0);
    const token = made.out.trim();
    const byName = await coffer(
      ["run", "--secret", "/app/db-password", "-q", "--", ...printEnv("^DB_PASSWORD$")],
      { COFFER_TOKEN: token },
    );
    expect(byName.code).toBe(0);
    expect(Object.keys(JSON.parse(byName.out))).toEqual(["DB_PASSWORD"]);
    const folder = await coffer(["run", "--path", "/app", "--", ...printEnv("^DB_")], {
      COFFER_TOKEN: token,
    });
    expect(folder.code).toBe(4);
    expect(folder.out).toBe("");
    // The watch takes it too: coffer says so before starting the child.
    const watching = start(
      [
        "run",
        "--secret",
        "/app/db-password",
        "--watch",
        "--",
        process.execPath,
        "-e",
        "console.log('up')",
      ],
      { COFFER_TOKEN: token },
    );
    expect(await watching.exited).toEqual({ code: 0, signal: null });
    expect(watching.stderr[0]).toBe("coffer: watching the secrets for changes");
    expect(watching.stdout).toEqual(["up"]);
  });

  it("gives the child coffer's stdin, stdout and stderr", async () => {
    const r = await coffer(
      [
        "run",
        "--secret",
        "/app/db-password",
        "-q",
        "--",
        process.execPath,
        "-e",
        "let t = ''; process.stdin.on('data', (c) => (t += c)).on('end', () => { console.log('in:' + t); console.error('to stderr'); });",
      ],
      {},
      "piped text",
    );
    expect(r.code).toBe(0);
    expect(r.out).toBe("in:piped text");
    expect(r.err).toBe("to stderr");
  });

  it("refuses two secrets that map to one variable, before the child starts", async () => {
    await createSecret("/clash", "api-key", SecretType.OPAQUE, unique("a"));
    await createSecret("/clash", "API_KEY", SecretType.OPAQUE, unique("b"));
    const r = await coffer([
      "run",
      "--path",
      "/clash",
      "--",
      process.execPath,
      "-e",
      "console.log('started')",
    ]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toMatch(
      /^coffer: two secrets map to the same environment variable: API_KEY comes from \/clash\/(API_KEY|api-key) and from \/clash\/(api-key|API_KEY)\n/,
    );
  });

  it("passes the child's exit code through, 127 for a missing command", async () => {
    const three = await coffer([
      "run",
      "--secret",
      "/app/db-password",
      "-q",
      "--",
      process.execPath,
      "-e",
      "process.exit(3)",
    ]);
    expect(three.code).toBe(3);
    const missing = await coffer([
      "run",
      "--secret",
      "/app/db-password",
      "-q",
      "--",
      "coffer-no-such-program",
    ]);
    expect(missing.code).toBe(127);
    expect(missing.err).toMatch(/cannot run "coffer-no-such-program": no such command/);
  });

  // Children install their signal handlers before they print the line a
  // test waits for: a signal sent on that line must find the handler.
  it("forwards SIGTERM to the child and exits with its code, or 128 + 15 when it dies of it", async () => {
    const handles = start([
      "run",
      "--secret",
      "/app/db-password",
      "-q",
      "--",
      process.execPath,
      "-e",
      "process.on('SIGTERM', () => { console.log('child got SIGTERM'); process.exit(42); }); console.log('ready'); setInterval(() => {}, 1000);",
    ]);
    await handles.line(/^ready$/);
    handles.child.kill("SIGTERM");
    expect(await handles.exited).toEqual({ code: 42, signal: null });
    expect(handles.stdout).toContain("child got SIGTERM");

    const dies = start([
      "run",
      "--secret",
      "/app/db-password",
      "-q",
      "--",
      process.execPath,
      "-e",
      "console.log('ready'); setInterval(() => {}, 1000);",
    ]);
    await dies.line(/^ready$/);
    dies.child.kill("SIGTERM");
    expect(await dies.exited).toEqual({ code: 143, signal: null });

    const hup = start([
      "run",
      "--secret",
      "/app/db-password",
      "-q",
      "--",
      process.execPath,
      "-e",
      "process.on('SIGUSR2', () => console.log('usr2')); process.on('SIGHUP', () => { console.log('hup'); process.exit(0); }); console.log('ready'); setInterval(() => {}, 1000);",
    ]);
    await hup.line(/^ready$/);
    hup.child.kill("SIGUSR2");
    await hup.line(/^usr2$/);
    hup.child.kill("SIGHUP");
    expect(await hup.exited).toEqual({ code: 0, signal: null });
  });

  it("refuses single-access secrets unless --single-access, which consumes each once", async () => {
    const otp1 = unique("otp1");
    const otp2 = unique("otp2");
    values.push(otp1, otp2);
    const id = await createSecret("/once", "otp", SecretType.OPAQUE, otp1, { singleAccess: true });
    await admin.createSecretVersion({ secretId: id, data: Buffer.from(otp2) });
    // Named twice (its folder and its name): refused once, by name.
    const both = ["--path", "/once", "--secret", "otp"];
    const refused = await coffer(["run", ...both, "--", ...printEnv("^OTP$")]);
    expect(refused.code).toBe(5);
    expect(refused.out).toBe("");
    expect(refused.err).toBe(
      "coffer: single-access secret /once/otp: reading consumes it\nhint: add --single-access to read and consume them, or leave them out",
    );

    // Still unspent: the opt-in reads the newest, once, though named twice.
    const consumed = await coffer(["run", ...both, "--single-access", "--", ...printEnv("^OTP$")]);
    expect(consumed.code).toBe(0);
    expect(JSON.parse(consumed.out)).toEqual({ OTP: otp2 });
    expect(consumed.err.split("\n").filter((l) => l.includes("consumed"))).toEqual([
      "coffer: consumed single-access /once/otp (version 2): it cannot be read again",
    ]);
    // Version 1 was not spent with it: it is the next one served.
    const older = await coffer(["run", ...both, "--single-access", "--", ...printEnv("^OTP$")]);
    expect(JSON.parse(older.out)).toEqual({ OTP: otp1 });
    const again = await coffer([
      "run",
      "--secret",
      "/once/otp",
      "--single-access",
      "--",
      ...printEnv("^OTP$"),
    ]);
    expect(again.code).not.toBe(0);
    expect(again.out).toBe("");
  });

  it("--watch restarts the child within a second of a new version, with the new values", async () => {
    const first = unique("v1");
    const second = unique("v2");
    values.push(first, second);
    const id = await createSecret("/live", "token", SecretType.OPAQUE, first);
    const r = start([
      "run",
      "--path",
      "/live",
      "--watch",
      "--",
      process.execPath,
      "-e",
      // performance.timeOrigin: when the process started, before Node's own boot.
      "process.on('SIGTERM', () => { console.log('stop ' + process.pid); process.exit(0); }); console.log('start ' + process.env.TOKEN + ' ' + Math.round(performance.timeOrigin)); setInterval(() => {}, 1000);",
    ]);
    try {
      await r.line(new RegExp(`^start ${first} \\d+$`));
      // The watch is established once coffer says so.
      await waitFor(() => r.stderr.includes("coffer: watching the secrets for changes"));
      await sleep(500);
      await admin.createSecretVersion({ secretId: id, data: Buffer.from(second) });
      const created = Date.now();
      const restarted = await r.line(new RegExp(`^start ${second} \\d+$`));
      // The new child was started within a second of the change; what it
      // printed arrives after Node's boot, slower on a loaded machine.
      const startedAt = Number(restarted.text.split(" ")[2]);
      expect(startedAt - created, r.stderr.join("\n")).toBeLessThan(1000);
      expect(restarted.at - created, r.stderr.join("\n")).toBeLessThan(5000);
      expect(r.stdout.some((l) => l.startsWith("stop "))).toBe(true);
      expect(r.stderr).toContain(`coffer: TOKEN changed; restarting ${process.execPath}`);
      // Never a value on stderr.
      expect(r.stderr.join("\n")).not.toContain(second);
    } finally {
      r.child.kill("SIGTERM");
    }
    expect(await r.exited).toEqual({ code: 0, signal: null });
  });

  it("--watch keeps the child when a change cannot be read, and kills one that ignores SIGTERM after --grace", async () => {
    const id = await createSecret("/stubborn", "key", SecretType.OPAQUE, unique("k1"));
    const r = start([
      "run",
      "--path",
      "/stubborn",
      "--watch",
      "--grace",
      "300ms",
      "--",
      process.execPath,
      "-e",
      "process.on('SIGTERM', () => console.log('ignored')); console.log('start ' + process.pid); setInterval(() => {}, 1000);",
    ]);
    try {
      const first = await r.line(/^start \d+$/);
      await waitFor(() => r.stderr.includes("coffer: watching the secrets for changes"));
      await sleep(500);
      // A new secret whose name clashes: the reload fails, the child stays.
      await createSecret("/stubborn", "KEY", SecretType.OPAQUE, unique("clash"));
      await waitFor(() =>
        r.stderr.some((l) =>
          /^coffer: could not read the secrets after a change: two secrets map to the same environment variable: KEY comes from .*; .* keeps running with the values it has$/.test(
            l,
          ),
        ),
      );
      expect(r.stdout.filter((l) => l.startsWith("start "))).toEqual([first.text]);
      // Clash gone, new value: a restart, which takes the SIGKILL after 300 ms.
      const clash = await admin.listSecrets({ projectId, path: "/stubborn", name: "KEY" });
      await admin.deleteSecret({ secretId: clash.secrets[0]?.id ?? "" });
      await admin.createSecretVersion({ secretId: id, data: Buffer.from(unique("k2")) });
      await waitFor(() => r.stdout.filter((l) => l.startsWith("start ")).length === 2);
      expect(r.stdout).toContain("ignored");
      expect(
        r.stderr.some((l) => /did not exit within 300 ms of SIGTERM: killed it$/.test(l)),
      ).toBe(true);
    } finally {
      r.child.kill("SIGINT");
    }
    // The second child ignores SIGTERM only: SIGINT ends it, and coffer with it.
    expect(await r.exited).toEqual({ code: 130, signal: null });
  });

  it("--watch --watch-signal SIGHUP signals the same child instead", async () => {
    const id = await createSecret("/hup", "conf", SecretType.OPAQUE, unique("c1"));
    const r = start([
      "run",
      "--path",
      "/hup",
      "--watch",
      "--watch-signal",
      "SIGHUP",
      "--",
      process.execPath,
      "-e",
      "process.on('SIGHUP', () => console.log('hup ' + process.pid)); console.log('start ' + process.pid); setInterval(() => {}, 1000);",
    ]);
    try {
      const started = await r.line(/^start \d+$/);
      const pid = started.text.split(" ")[1];
      await waitFor(() => r.stderr.includes("coffer: watching the secrets for changes"));
      await sleep(500);
      await admin.createSecretVersion({ secretId: id, data: Buffer.from(unique("c2")) });
      await r.line(new RegExp(`^hup ${pid}$`), 5000);
      expect(r.stdout.filter((l) => l.startsWith("start "))).toHaveLength(1);
    } finally {
      r.child.kill("SIGTERM");
    }
    expect((await r.exited).code).toBe(143);
  });

  it("--generate creates a random value of the length and charset asked for, never printed", async () => {
    const made = await coffer([
      "secret",
      "create",
      "/gen/session",
      "--generate",
      "48",
      "--charset",
      "hex",
    ]);
    expect(made.code).toBe(0);
    expect(made.err).toBe(
      "Generated a random 48-character hex value (192 bits); it is not shown (--show-generated shows it).",
    );
    const read = await admin.accessSecretVersionByPath({
      projectId,
      path: "/gen",
      name: "session",
      revision: "latest_enabled",
    });
    const value = Buffer.from(read.data).toString("utf8");
    values.push(value);
    expect(value).toMatch(/^[0-9a-f]{48}$/);
    expect(made.out).not.toContain(value);
    expect(made.out).toMatch(/^Created secret \/gen\/session \(opaque\) with version 1\./);

    // A new version, shown on request: the value alone on stdout.
    const shown = await coffer([
      "version",
      "create",
      "/gen/session",
      "--generate",
      "--show-generated",
    ]);
    expect(shown.code).toBe(0);
    const v2 = await admin.accessSecretVersionByPath({
      projectId,
      path: "/gen",
      name: "session",
      revision: "latest_enabled",
    });
    const second = Buffer.from(v2.data).toString("utf8");
    values.push(second);
    expect(second).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(shown.out).toBe(second);
    expect(shown.err).toBe("Created version 2 of /gen/session (enabled).");

    // Refusals: another payload source, a type with a shape, a bad length.
    const both = await coffer(["secret", "create", "/gen/x", "--generate", "--data", "y"]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/not both --data and --generate/);
    await createSecret("/gen", "kv", SecretType.KEY_VALUE, '{"a":"b"}');
    const kv = await coffer(["version", "create", "/gen/kv", "--generate"]);
    expect(kv.code).toBe(2);
    expect(kv.err).toMatch(/--generate makes an opaque payload .* type is key_value/);
    const short = await coffer(["secret", "create", "/gen/y", "--generate", "2"]);
    expect(short.code).toBe(2);
    expect(short.err).toMatch(
      /--generate LENGTH must be a whole number from 4 to 65536 \(got "2"\)/,
    );
  });

  it("wrote none of the values to disk: the working folder and the temporary folder", async () => {
    expect(values.length).toBeGreaterThan(5);
    // The scan finds what is there: a planted canary, in base64.
    const canary = unique("canary");
    const planted = path.join(work, "planted.txt");
    await writeFile(planted, Buffer.from(canary).toString("base64"));
    const canaryScan = await scan([work, tmpdir()], [canary], startedAt - 1000);
    expect(canaryScan.found).toEqual([planted]);
    await rm(planted);

    const { found, scanned } = await scan([work, tmpdir()], values, startedAt - 1000);
    // The server's data files changed during the run, at least.
    expect(scanned).toBeGreaterThan(0);
    expect(found).toEqual([]);
  });
});

/**
 * The files under `roots` changed at or after `since` that hold one of
 * `values`, as UTF-8 or in base64.
 */
async function scan(
  roots: string[],
  values: string[],
  since: number,
): Promise<{ found: string[]; scanned: number }> {
  const needles = values.flatMap((v) => [
    Buffer.from(v),
    Buffer.from(Buffer.from(v).toString("base64")),
  ]);
  const found: string[] = [];
  let scanned = 0;
  const seen = new Set<string>();
  for (const root of roots) {
    for await (const file of filesChangedSince(root, since)) {
      // The work folder is under the temporary folder: each file once.
      if (seen.has(file)) continue;
      seen.add(file);
      let content: Buffer;
      try {
        content = await readFile(file);
      } catch {
        continue; // Gone meanwhile, or not ours to read.
      }
      scanned += 1;
      if (needles.some((n) => content.includes(n))) found.push(file);
    }
  }
  return { found, scanned };
}

/** Regular files under `root` changed at or after `since` (ms), up to 64 MiB each. */
async function* filesChangedSince(root: string, since: number): AsyncGenerator<string> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const full = path.join(root, e.name);
    if (e.isDirectory()) yield* filesChangedSince(full, since);
    else if (e.isFile()) {
      const s = await stat(full).catch(() => undefined);
      if (s !== undefined && s.mtimeMs >= since && s.size <= 64 * 1024 * 1024) yield full;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(50);
  }
}
