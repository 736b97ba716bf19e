import { spawn } from "node:child_process";
import { chmod, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateEnv } from "../support/env-fixture.ts";
import { REPO_ROOT, type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * `coffer import` and `coffer export` as people run them: real CLI processes
 * against a real server. A generated 500-line .env (every rule of the .env
 * grammar) goes in and comes back out with the values the rules promise;
 * JSON and YAML likewise, as large files and small ones with every type rule; a dry run changes nothing, a second run finds
 * everything unchanged, --new-versions adds versions where values changed;
 * exports go to stdout or to a new 0600 file; single-access secrets are
 * refused unless asked for; a broken file is refused naming the line and
 * the rule, never its text.
 */

const CLI_MAIN = path.join(REPO_ROOT, "packages/cli/src/main.ts");
const CLI_BIN = path.join(REPO_ROOT, "packages/cli/bin/coffer.js");
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const SLOW = 300_000;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

interface ImportReport {
  path: string;
  format: string;
  dryRun: boolean;
  rows: {
    name: string;
    where: string;
    type: string | null;
    action: string;
    note: string | null;
    result?: { outcome: string; revision?: number; error?: string };
  }[];
}

describe("coffer import and export against a real server", { timeout: SLOW }, () => {
  let dir: string | undefined;
  let server: ServerProcess | undefined;
  let env: Record<string, string> = {};

  /** Runs `coffer args...` from the sources (or the built bundle), in `dir`. */
  function coffer(
    args: string[],
    options: { stdin?: string; installed?: boolean } = {},
  ): Promise<Run> {
    const childEnv: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith("COFFER_")) childEnv[key] = value;
    }
    Object.assign(childEnv, env);
    // From the sources with the workspace's `@coffer/source` condition, as
    // the bundle is built: @coffer/console exports its import rules under that
    // condition only.
    const entry = options.installed
      ? [CLI_BIN]
      : ["--conditions=@coffer/source", "--import", TSX_LOADER, CLI_MAIN];
    const child = spawn(process.execPath, [...entry, ...args], {
      cwd: dir,
      env: childEnv,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.stdin.end(options.stdin);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`coffer ${args.join(" ")} still running after 120 s`));
      }, 120_000);
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({
          code,
          out: Buffer.concat(out).toString("utf8"),
          err: Buffer.concat(err).toString("utf8"),
        });
      });
    });
  }

  async function importJson(
    args: string[],
    options: { stdin?: string; installed?: boolean } = {},
  ): Promise<ImportReport> {
    const run = await coffer(["import", ...args, "-o", "json"], options);
    expect(run.err).toBe("");
    expect(run.code).toBe(0);
    return JSON.parse(run.out) as ImportReport;
  }

  async function listNames(folder: string): Promise<string[]> {
    const run = await coffer(["secret", "list", "--path", folder, "--all", "-o", "json"]);
    expect(run.code).toBe(0);
    const listed = JSON.parse(run.out) as { secrets: { name: string }[] };
    return listed.secrets.map((s) => s.name).sort();
  }

  beforeAll(async () => {
    dir = await makeTempDir("cli-import");
    server = await startServer({ env: { COFFER_DATA_DIR: path.join(dir, "server") } });
    env = {
      COFFER_URL: server.httpUrl,
      COFFER_TOKEN: server.token,
      COFFER_CONFIG: path.join(dir, "no-profile.json"),
      HOME: dir,
    };
    const created = await coffer(["project", "create", "import-export", "-o", "json"]);
    expect(created.code).toBe(0);
    env.COFFER_PROJECT = (JSON.parse(created.out) as { project: { id: string } }).project.id;
  });

  afterAll(async () => {
    server?.kill();
    await server?.exited;
    await removeTempDir(dir);
  });

  it("round-trips a generated 500-line .env: dry run, import, export, re-import unchanged, new versions", async () => {
    const fixture = generateEnv(500);
    expect(fixture.lines).toBeGreaterThanOrEqual(500);
    await writeFile(path.join(dir as string, ".env"), fixture.text);

    // A dry run plans every entry and writes nothing.
    const dry = await importJson([".env", "--path", "/rt", "--dry-run"]);
    expect(dry).toMatchObject({ path: "/rt", format: "dotenv", dryRun: true });
    expect(dry.rows).toHaveLength(fixture.entries);
    const creates = dry.rows.filter((r) => r.action === "create");
    expect(creates.map((r) => r.name).sort()).toEqual([...fixture.expected.keys()].sort());
    const refused = dry.rows.filter((r) => r.action === "refused");
    expect(refused.length).toBe(fixture.entries - fixture.expected.size);
    for (const row of refused) {
      expect(row.note).toMatch(
        fixture.empty.has(row.name)
          ? /^The value is empty/
          : /^Given again at line \d+; the later value is imported\.$/,
      );
    }
    expect(await listNames("/rt")).toEqual([]);

    // The import creates one secret per imported key, each with its value as version 1.
    const applied = await importJson([".env", "--path", "/rt", "--yes"]);
    const written = applied.rows.filter((r) => r.result !== undefined);
    expect(written).toHaveLength(fixture.expected.size);
    expect(written.every((r) => r.result?.outcome === "created")).toBe(true);
    expect(await listNames("/rt")).toEqual([...fixture.expected.keys()].sort());

    // Exported as JSON, each value is exactly the one the rules promise.
    const json = await coffer(["export", "--path", "/rt", "--format", "json"]);
    expect(json.code).toBe(0);
    expect(new Map(Object.entries(JSON.parse(json.out) as Record<string, string>))).toEqual(
      fixture.expected,
    );

    // Exported as .env: one line per secret, which imports back as unchanged.
    const dotenv = await coffer(["export", "--path", "/rt", "--format", "dotenv"]);
    expect(dotenv.code).toBe(0);
    expect(dotenv.out.split("\n")).toHaveLength(fixture.expected.size + 1);
    const again = await importJson(["-", "--format", "dotenv", "--path", "/rt", "--dry-run"], {
      stdin: dotenv.out,
    });
    expect(again.rows).toHaveLength(fixture.expected.size);
    expect(again.rows.every((r) => r.action === "unchanged")).toBe(true);

    // Re-running the original file: every secret is unchanged, the duplicates still refused.
    const rerun = await importJson([".env", "--path", "/rt", "--yes", "--new-versions"]);
    expect(rerun.rows.filter((r) => r.action === "unchanged")).toHaveLength(fixture.expected.size);
    expect(rerun.rows.some((r) => r.result !== undefined)).toBe(false);

    // Three values changed: three new versions with --new-versions, "exists" without.
    const changed = `${fixture.text}PLAIN_2=changed\nDUP_0=changed too\nUNICODE_11=ü\n`;
    await writeFile(path.join(dir as string, "changed.env"), changed);
    const without = await importJson(["changed.env", "--path", "/rt", "--dry-run"]);
    const exists = without.rows.filter((r) => r.action === "exists").map((r) => r.name);
    expect(exists.sort()).toEqual(["DUP_0", "PLAIN_2", "UNICODE_11"]);
    const withNew = await importJson(["changed.env", "--path", "/rt", "--yes", "--new-versions"]);
    const versions = withNew.rows.filter((r) => r.result !== undefined);
    expect(versions.map((r) => [r.name, r.result])).toEqual([
      ["PLAIN_2", { outcome: "new_version", revision: 2 }],
      ["DUP_0", { outcome: "new_version", revision: 2 }],
      ["UNICODE_11", { outcome: "new_version", revision: 2 }],
    ]);
    const access = await coffer(["version", "access", "/rt/DUP_0", "--raw"]);
    expect(access.out).toBe("changed too");
  });

  it("round-trips a large JSON file and a large YAML file of the same values", async () => {
    // The .env fixture's values (quotes, escapes, line breaks, unicode) and
    // twenty key/value objects, as JSON, and as YAML written by hand: plain
    // keys, literal blocks for multi-line values, double quotes otherwise.
    const values: Record<string, string | Record<string, string | number | boolean>> =
      Object.fromEntries(generateEnv(500).expected);
    for (let i = 0; i < 20; i++) {
      values[`kv_${i}`] = { user: `u ${i}`, port: 5000 + i, tls: i % 2 === 0, note: `a\nb ${i}` };
    }
    const yamlLines: string[] = [];
    for (const [key, value] of Object.entries(values)) {
      if (typeof value === "object") {
        yamlLines.push(`${key}:`);
        for (const [k, v] of Object.entries(value)) yamlLines.push(`  ${k}: ${JSON.stringify(v)}`);
      } else if (value.includes("\n") && /^\S/.test(value) && !/\s$/.test(value)) {
        yamlLines.push(`${key}: |-`, ...value.split("\n").map((l) => (l === "" ? "" : `  ${l}`)));
      } else {
        yamlLines.push(`${key}: ${JSON.stringify(value)}`);
      }
    }
    expect(yamlLines.length).toBeGreaterThanOrEqual(500);
    await writeFile(path.join(dir as string, "big.json"), JSON.stringify(values, null, 2));
    await writeFile(path.join(dir as string, "big.yaml"), `${yamlLines.join("\n")}\n`);

    for (const [file, folder] of [
      ["big.json", "/bigjson"],
      ["big.yaml", "/bigyaml"],
    ] as const) {
      const imported = await importJson([file, "--path", folder, "--yes"]);
      expect(imported.rows.filter((r) => r.result?.outcome === "created")).toHaveLength(
        Object.keys(values).length,
      );
      const asJson = await coffer(["export", "--path", folder, "--format", "json"]);
      expect(asJson.code).toBe(0);
      expect(JSON.parse(asJson.out)).toEqual(values);
      const asYaml = await coffer(["export", "--path", folder, "--format", "yaml"]);
      const again = await importJson(["-", "--format", "yaml", "--path", folder, "--dry-run"], {
        stdin: asYaml.out,
      });
      expect(again.rows.every((r) => r.action === "unchanged")).toBe(true);
      expect(again.rows).toHaveLength(Object.keys(values).length);
    }
  });

  it("round-trips JSON and YAML files, key/value objects among them", async () => {
    const json = {
      API_TOKEN: "t0k\n\"en\" '#' ",
      PORT: 5432,
      DEBUG: false,
      db: { user: "app", port: 5432, tls: true, note: "multi\nline é" },
      nested: { a: { b: 1 } },
    };
    await writeFile(path.join(dir as string, "secrets.json"), JSON.stringify(json, null, 2));
    const imported = await importJson(["secrets.json", "--path", "/json", "--yes"]);
    expect(imported.rows.map((r) => [r.name, r.type, r.action])).toEqual([
      ["API_TOKEN", "opaque", "create"],
      ["PORT", "opaque", "create"],
      ["DEBUG", "opaque", "create"],
      ["db", "key_value", "create"],
      ["nested", null, "refused"],
    ]);
    const backJson = await coffer(["export", "--path", "/json", "--format", "json"]);
    // Numbers and booleans at the top level are stored as their text; a key/value object keeps its types.
    expect(JSON.parse(backJson.out)).toEqual({
      API_TOKEN: json.API_TOKEN,
      DEBUG: "false",
      PORT: "5432",
      db: json.db,
    });

    const yaml = "token: |\n  line one\n  line two\nzip: '0123'\nkv:\n  a: 'yes'\n  b: 1.5\n";
    await writeFile(path.join(dir as string, "secrets.yaml"), yaml);
    await importJson(["secrets.yaml", "--path", "/yaml", "--yes"]);
    const backYaml = await coffer(["export", "--path", "/yaml", "--format", "yaml"]);
    expect(backYaml.code).toBe(0);
    await writeFile(path.join(dir as string, "back.yaml"), backYaml.out);
    // Read back by the installed bundle, which carries the YAML parser.
    const again = await importJson(["back.yaml", "--path", "/yaml", "--dry-run"], {
      installed: true,
    });
    expect(again.rows.map((r) => [r.name, r.type, r.action])).toEqual([
      ["kv", "key_value", "unchanged"],
      ["token", "opaque", "unchanged"],
      ["zip", "opaque", "unchanged"],
    ]);
    const token = await coffer(["version", "access", "/yaml/token", "--raw"]);
    expect(token.out).toBe("line one\nline two\n");
  });

  it("exports to a new 0600 file, never over an existing one unless --force, and through the installed bundle", async () => {
    const file = path.join(dir as string, "prod.env");
    const first = await coffer(["export", "--path", "/json", "--output-file", file], {
      installed: true,
    });
    expect(first.err).toBe(`Exported 4 secrets from /json to ${file} (dotenv, mode 0600).\n`);
    expect(first.code).toBe(0);
    expect(first.out).toBe("");
    expect(first.err).toBe(`Exported 4 secrets from /json to ${file} (dotenv, mode 0600).\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, "utf8");
    expect(text).toContain(`db='{"user":"app","port":5432,"tls":true,"note":"multi\\nline é"}'\n`);

    const refused = await coffer(["export", "--path", "/yaml", "--output-file", file]);
    expect(refused.code).toBe(5);
    expect(refused.err).toContain("exists: it is not overwritten");
    expect(await readFile(file, "utf8")).toBe(text);

    await chmod(file, 0o644);
    const forced = await coffer(["export", "--path", "/yaml", "--output-file", file, "--force"]);
    expect(forced.code).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, "utf8")).toContain("zip='0123'\n");
    // No temporary file was left beside it.
    expect((await readdir(dir as string)).filter((f) => f.includes("prod.env"))).toEqual([
      "prod.env",
    ]);
  });

  it("refuses single-access secrets unless asked, naming them, before reading anything", async () => {
    const made = await coffer(
      ["secret", "create", "/once/bootstrap", "--single-access", "--from-file", "-"],
      { stdin: "one-time-s3cret" },
    );
    expect(made.code).toBe(0);
    await coffer(["secret", "create", "/once/plain", "--data", "plain-value"]);

    const refused = await coffer(["export", "--path", "/once", "--format", "dotenv"]);
    expect(refused.code).toBe(5);
    expect(refused.out).toBe("");
    expect(refused.err).toContain(
      "refusing to export single-access secrets (reading one consumes it): /once/bootstrap",
    );
    expect(refused.err).toContain("hint: give --single-access");

    // Refused before reading: the version is still there to export.
    const opted = await coffer([
      "export",
      "--path",
      "/once",
      "--format",
      "dotenv",
      "--single-access",
    ]);
    expect(opted.code).toBe(0);
    expect(opted.out).toBe("bootstrap='one-time-s3cret'\nplain='plain-value'\n");
    // ...and exporting it consumed it.
    const consumed = await coffer(["version", "access", "/once/bootstrap", "--raw"]);
    expect(consumed.code).toBe(3);
    expect(consumed.err).toMatch(/has no enabled version \(NOT_FOUND\)/);
  });

  it("refuses a broken file naming the line and the rule, never its text, and writes nothing", async () => {
    await writeFile(
      path.join(dir as string, "broken.env"),
      "GOOD=1\n# fine\nthis line leaks hunter2\nLATER=2\n",
    );
    const broken = await coffer(["import", "broken.env", "--path", "/broken", "--yes"]);
    expect(broken.code).toBe(2);
    expect(broken.out).toBe("");
    expect(broken.err).toBe("coffer: This .env file does not parse. Line 3: expected KEY=value.\n");
    await writeFile(path.join(dir as string, "unclosed.env"), "A=1\nB='hunter2\nC=3\n");
    const unclosed = await coffer(["import", "unclosed.env", "--path", "/broken", "--yes"]);
    expect(unclosed.code).toBe(2);
    expect(unclosed.err).toContain("Line 2: the value's ' quote is never closed");
    expect(unclosed.err).not.toContain("hunter2");
    expect(await listNames("/broken")).toEqual([]);

    // Without --yes and without a terminal to ask on, nothing is written either.
    await writeFile(path.join(dir as string, "ok.env"), "OK=1\n");
    const unasked = await coffer(["import", "ok.env", "--path", "/broken"]);
    expect(unasked.code).toBe(2);
    expect(unasked.err).toContain("give --yes to import without a prompt");
    expect(await listNames("/broken")).toEqual([]);
  });
});
