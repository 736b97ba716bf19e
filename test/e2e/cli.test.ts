import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeAgentConfig } from "../support/agent-process.ts";
import {
  REPO_ROOT,
  type ServerProcess,
  serverEnv,
  startServer,
} from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The `coffer` command as people run it: real processes
 * (`node --import tsx packages/cli/src/main.ts ...`) against a real server,
 * checking stdout, stderr and exit codes. First the README's session, then
 * byte-exact payloads, stdin, JSON output, the exit codes of mistakes, the
 * profile file, the agent, and `coffer server` itself; and that the
 * installed command (the package's bin, which runs the bundle the build
 * makes) answers as the sources do.
 */

const CLI_MAIN = path.join(REPO_ROOT, "packages/cli/src/main.ts");
/** The package's bin: dist/coffer.mjs, the bundle `npm run build` makes. */
const CLI_BIN = path.join(REPO_ROOT, "packages/cli/bin/coffer.js");
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
/** Each run of the CLI takes a few seconds on a loaded two-core machine; a test runs up to a dozen. */
const SLOW = 180_000;
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/** What one run of `coffer` did. */
interface Run {
  code: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** Processes still running (a `coffer server`), killed if a test leaves one behind. */
const live = new Set<ChildProcess>();

/**
 * Runs `coffer args...` to its end (killed after `timeoutMs`), with the
 * runner's environment less every COFFER_* variable, plus `env`; from the
 * sources, or with `installed` through the package's bin.
 */
function coffer(
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    stdin?: Buffer | string;
    cwd?: string;
    installed?: boolean;
  } = {},
  timeoutMs = 60_000,
): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("COFFER_")) env[key] = value;
  }
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const entry = options.installed ? [CLI_BIN] : ["--import", TSX_LOADER, CLI_MAIN];
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  live.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => out.push(c));
  child.stderr.on("data", (c: Buffer) => err.push(c));
  child.stdin.end(options.stdin);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`coffer ${args.join(" ")} still running after ${timeoutMs} ms`));
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      live.delete(child);
      const stdout = Buffer.concat(out);
      resolve({
        code,
        stdout,
        out: stdout.toString("utf8"),
        err: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}

describe("coffer against a real server", { timeout: SLOW }, () => {
  let dir: string | undefined;
  let work = "";
  let server: ServerProcess | undefined;
  let projectId = "";
  /** The environment of the session: server, admin token, project, and a profile file that does not exist. */
  let env: Record<string, string> = {};
  const password = `pw-${randomBytes(8).toString("hex")}`;

  beforeAll(async () => {
    dir = await makeTempDir("cli");
    work = path.join(dir, "work");
    await mkdir(work);
    server = await startServer({ env: { COFFER_DATA_DIR: path.join(dir, "server") } });
    env = {
      COFFER_URL: server.httpUrl,
      COFFER_TOKEN: server.token,
      COFFER_CONFIG: path.join(work, "no-profile.json"),
      HOME: work,
    };
    const created = await coffer(["project", "create", "demo"], { env });
    expect(created.err).toBe("");
    expect(created.code).toBe(0);
    const match = new RegExp(`export COFFER_PROJECT=(${UUID})\\n`).exec(created.out);
    projectId = match?.[1] ?? "";
    expect(created.out).toBe(
      `Created project demo (id ${projectId}).\nUse it:\n  export COFFER_PROJECT=${projectId}\n`,
    );
    env.COFFER_PROJECT = projectId;
  });

  afterAll(async () => {
    for (const child of live) child.kill("SIGKILL");
    server?.kill();
    await server?.exited;
    await removeTempDir(dir);
  });

  /** Runs coffer in the session's environment, from the work folder. */
  const run = (
    args: string[],
    options: {
      env?: Record<string, string | undefined>;
      stdin?: Buffer | string;
      installed?: boolean;
    } = {},
  ) => coffer(args, { cwd: work, ...options, env: { ...env, ...options.env } });

  it("runs the README session: create, access a field raw, list as JSON, disable", async () => {
    const db = {
      engine: "postgres",
      username: "app",
      password,
      host: "db.internal",
      dbname: "orders",
      port: "5432",
    };
    await writeFile(path.join(work, "db.json"), JSON.stringify(db, null, 2));

    const created = await run([
      "secret",
      "create",
      "/prod/db",
      "--type",
      "database_credentials",
      "--from-file",
      "db.json",
    ]);
    expect(created.err).toBe("");
    expect(created.out).toMatch(
      new RegExp(
        `^Created secret /prod/db \\(database_credentials\\) with version 1\\.\\nid: ${UUID}\\n$`,
      ),
    );
    expect(created.code).toBe(0);

    const field = await run(["version", "access", "/prod/db", "--field", "password", "--raw"]);
    expect(field).toMatchObject({ code: 0, out: password, err: "" });

    const list = await run(["secret", "list", "-o", "json"]);
    expect(list.code).toBe(0);
    const json = JSON.parse(list.out);
    expect(json.totalCount).toBe("1");
    expect(json.secrets[0]).toMatchObject({
      projectId,
      path: "/prod",
      name: "db",
      type: "SECRET_TYPE_DATABASE_CREDENTIALS",
      status: "SECRET_STATUS_READY",
      versionCount: 1,
      protected: false,
    });

    const table = await run(["secret", "list"]);
    expect(table.out).toMatch(
      /^SECRET {4}TYPE {18}VERSIONS {2}STATUS {2}TAGS {2}UPDATED {15}ID\n\/prod\/db {2}database_credentials {2}1 /,
    );

    const disabled = await run(["version", "disable", "/prod/db", "1"]);
    expect(disabled).toMatchObject({ code: 0, out: "Disabled version 1 of /prod/db.\n", err: "" });

    const refused = await run(["version", "access", "/prod/db", "1"]);
    expect(refused.code).toBe(5);
    expect(refused.out).toBe("");
    expect(refused.err).toMatch(/^coffer: .*version 1 .*disabled.*\(FAILED_PRECONDITION\)\n$/);

    const enabled = await run(["version", "enable", "/prod/db", "1"]);
    expect(enabled).toMatchObject({ code: 0, out: "Enabled version 1 of /prod/db.\n" });

    // The payload's other fields, and the payload itself with one newline added for terminals.
    const port = await run(["version", "access", "/prod/db", "--field", "port"]);
    expect(port.out).toBe("5432\n");
    const whole = await run(["version", "access", "/prod/db"]);
    expect(whole.out).toBe(`${JSON.stringify(db, null, 2)}\n`);
  });

  it("names an unknown flag and a bad path, with exit code 2, before any call", async () => {
    const flag = await run(["secret", "list", "--colour", "never"]);
    expect(flag).toMatchObject({
      code: 2,
      out: "",
      err: 'coffer: unknown flag --colour for "coffer secret list"\nhint: see "coffer secret list --help"\n',
    });
    const bad = await run(["version", "access", "prod/db"]);
    expect(bad).toMatchObject({
      code: 2,
      out: "",
      err: 'coffer: bad secret "prod/db": a secret is named by its path and name, starting with "/" (e.g. /prod/db), or by its id (a UUID)\nhint: did you mean "/prod/db"?\n',
    });
    const revision = await run(["version", "disable", "/prod/db", "first"]);
    expect(revision.code).toBe(2);
    expect(revision.err).toContain('bad revision "first"');
  });

  it("answers exit code 3 for what does not exist, naming it", async () => {
    const byPath = await run(["version", "access", "/prod/nope"]);
    expect(byPath.code).toBe(3);
    expect(byPath.err).toMatch(/\(NOT_FOUND\)\n$/);
    const get = await run(["secret", "get", "/prod/nope"]);
    expect(get.code).toBe(3);
    expect(get.err).toBe(
      `coffer: no secret /prod/nope in project ${projectId}\nhint: "coffer secret browse" shows what is there; use --region if it lives in another region\n`,
    );
    const revision = await run(["version", "get", "/prod/db", "99"]);
    expect(revision.code).toBe(3);
    const field = await run(["version", "access", "/prod/db", "--field", "nope"]);
    expect(field).toMatchObject({
      code: 3,
      out: "",
      err: 'coffer: the payload has no field "nope"\n',
    });
  });

  it("answers exit code 5 for a conflict and 2 for a payload the type refuses", async () => {
    const again = await run(["secret", "create", "/prod/db"]);
    expect(again.code).toBe(5);
    expect(again.err).toContain("(ALREADY_EXISTS)");
    const bad = await run(["version", "create", "/prod/db", "--data", '{"engine": "postgres"}']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("(INVALID_ARGUMENT)");
    // The flag the user typed is named, not the request field it filled; a
    // field present with the wrong type is not said to be missing.
    await writeFile(path.join(work, "bad-db.json"), '{"engine":"postgres","port":5432}');
    const fromFile = await run([
      "secret",
      "create",
      "/prod/bad-db",
      "--type",
      "database_credentials",
      "--from-file",
      "bad-db.json",
    ]);
    expect(fromFile.code).toBe(2);
    expect(fromFile.err).toBe(
      "coffer: --from-file bad-db.json: username: is required (a string) (INVALID_ARGUMENT)\n",
    );
    await writeFile(
      path.join(work, "bad-db.json"),
      '{"engine":"postgres","port":5432,"username":"u","password":"p","host":"h","dbname":"d"}',
    );
    const wrongType = await run(["version", "create", "/prod/db", "--from-file", "bad-db.json"]);
    expect(wrongType.err).toBe(
      "coffer: --from-file bad-db.json: port: must be a string (got number) (INVALID_ARGUMENT)\n",
    );
  });

  it("prints exactly the bytes of a binary payload with --raw, from a file or stdin", async () => {
    const first = Buffer.concat([randomBytes(4096), Buffer.from([0, 10, 13, 255, 10])]);
    await writeFile(path.join(work, "blob.bin"), first);
    const created = await run(["secret", "create", "/bin/blob", "--from-file", "blob.bin"]);
    expect(created.code).toBe(0);
    const raw = await run(["version", "access", "/bin/blob", "--raw"]);
    expect(raw.code).toBe(0);
    expect(raw.stdout.equals(first)).toBe(true);

    const second = Buffer.concat([randomBytes(2048), Buffer.from("no newline at the end")]);
    const piped = await run(["version", "create", "/bin/blob"], { stdin: second });
    expect(piped).toMatchObject({ code: 0, out: "Created version 2 of /bin/blob (enabled).\n" });
    const latest = await run(["version", "access", "/bin/blob", "--raw"]);
    expect(latest.stdout.equals(second)).toBe(true);
    const dash = await run(["version", "create", "/bin/blob", "--from-file", "-"], {
      stdin: first,
    });
    expect(dash.code).toBe(0);
    const byRevision = await run(["version", "access", "/bin/blob", "3", "--raw"]);
    expect(byRevision.stdout.equals(first)).toBe(true);
  });

  it("prints parseable JSON with -o json, in the proto JSON mapping", async () => {
    const versions = await run(["version", "list", "/bin/blob", "-o", "json"]);
    expect(JSON.parse(versions.out)).toMatchObject({
      totalCount: "3",
      versions: [
        { revision: 3, latest: true, status: "VERSION_STATUS_ENABLED" },
        { revision: 2 },
        { revision: 1 },
      ],
    });
    const access = await run(["version", "access", "/bin/blob", "3", "-o", "json"]);
    const answer = JSON.parse(access.out);
    expect(answer).toMatchObject({ revision: 3, type: "SECRET_TYPE_OPAQUE", singleAccess: false });
    expect(
      Buffer.from(answer.data, "base64").equals(await readFile(path.join(work, "blob.bin"))),
    ).toBe(true);
    const secret = await run(["secret", "get", "/bin/blob", "-o", "json"]);
    expect(JSON.parse(secret.out).secret).toMatchObject({
      path: "/bin",
      name: "blob",
      versionCount: 3,
    });
    const browse = await run(["secret", "browse", "-o", "json"]);
    expect(JSON.parse(browse.out)).toMatchObject({ currentPath: "/", totalCount: "2" });
  });

  it("manages a secret's life: update, protect, delete, restore", async () => {
    const update = await run([
      "secret",
      "update",
      "/bin/blob",
      "--description",
      "a blob",
      "--tag",
      "t1",
    ]);
    expect(update.code).toBe(0);
    expect(update.out).toContain("description:  a blob");
    expect((await run(["secret", "tags"])).out).toBe("TAG\nt1\n");
    expect((await run(["secret", "protect", "/bin/blob"])).out).toBe(
      "Protected secret /bin/blob.\n",
    );
    const protectedDelete = await run(["secret", "delete", "/bin/blob"]);
    expect(protectedDelete.code).toBe(5);
    expect(protectedDelete.err).toContain("(FAILED_PRECONDITION)");
    expect((await run(["secret", "unprotect", "/bin/blob"])).code).toBe(0);
    const deleted = await run(["secret", "delete", "/bin/blob"]);
    expect(deleted.out).toBe(
      "Scheduled secret /bin/blob for deletion; undo with: coffer secret restore /bin/blob\n",
    );
    expect((await run(["version", "access", "/bin/blob"])).code).not.toBe(0);
    const restored = await run(["secret", "restore", "/bin/blob"]);
    expect(restored).toMatchObject({ code: 0, out: "Restored secret /bin/blob.\n" });
  });

  it("edits tags, names the command that unprotects, and finds a secret scheduled for deletion", async () => {
    expect(
      (await run(["secret", "create", "/life/app", "--tag", "a", "--tag", "b", "--data", "x"]))
        .code,
    ).toBe(0);
    const edited = await run([
      "secret",
      "update",
      "/life/app",
      "--add-tag",
      "c",
      "--remove-tag",
      "a",
    ]);
    expect(edited.err).toBe("");
    expect(edited.out).toMatch(/^tags: +b, c$/m);
    const contradict = await run(["secret", "update", "/life/app", "--add-tag", "d", "--tag", "e"]);
    expect(contradict.code).toBe(2);

    expect((await run(["secret", "protect", "/life/app"])).code).toBe(0);
    const refused = await run(["secret", "delete", "/life/app"]);
    expect(refused.code).toBe(5);
    expect(refused.err).toBe(
      'coffer: secret /life/app is protected: it cannot be deleted (FAILED_PRECONDITION)\nhint: run "coffer secret unprotect /life/app" first, then delete it\n',
    );
    expect((await run(["secret", "unprotect", "/life/app"])).code).toBe(0);
    expect((await run(["secret", "delete", "/life/app"])).code).toBe(0);

    const live = await run(["secret", "get", "/life/app"]);
    expect(live.code).toBe(3);
    expect(live.err).toContain(
      `coffer: no secret /life/app in project ${projectId}; one is scheduled for deletion: use --deleted\n`,
    );
    const scheduled = await run(["secret", "get", "/life/app", "--deleted"]);
    expect(scheduled.err).toBe("");
    expect(scheduled.code).toBe(0);
    expect(scheduled.out).toMatch(/^status: +locked/m);
    expect(live.err).toContain('hint: "coffer secret restore /life/app" cancels its deletion');
  });

  it("wraps a raw OpenSSH key file given to --type ssh_key, and shows each type's shape in --help", async () => {
    const keyFile = path.join(work, "id_ed25519");
    await new Promise<void>((resolve, reject) =>
      spawn("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "cli-test", "-f", keyFile], {
        stdio: "ignore",
      }).once("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`ssh-keygen ${code}`)),
      ),
    );
    const key = await readFile(keyFile, "utf8");
    const created = await run([
      "secret",
      "create",
      "/ops/deploy-key",
      "--type",
      "ssh_key",
      "--from-file",
      keyFile,
    ]);
    expect(created.err).toBe("");
    expect(created.code).toBe(0);
    const field = await run([
      "version",
      "access",
      "/ops/deploy-key",
      "--field",
      "ssh_private_key",
      "--raw",
    ]);
    expect(field.out).toBe(key);
    const again = await run(["version", "create", "/ops/deploy-key", "--from-file", keyFile]);
    expect(again.err).toBe("");
    expect(again.code).toBe(0);
    const help = await run(["secret", "create", "--help"]);
    for (const type of [
      "opaque",
      "certificate",
      "key_value",
      "basic_credentials",
      "database_credentials",
      "ssh_key",
    ]) {
      expect(help.out).toMatch(new RegExp(`^  ${type} `, "m"));
    }
  });

  it("destroys a version at once for an admin (--yes), audited; schedules with delete; refuses a full_access token", async () => {
    expect((await run(["secret", "create", "/gone/key", "--data", "leaked"])).code).toBe(0);
    expect((await run(["version", "create", "/gone/key", "--data", "v2"])).code).toBe(0);
    const unsure = await run(["version", "destroy", "/gone/key", "1"]);
    expect(unsure.code).toBe(2);
    expect(unsure.err).toContain("add --yes");

    const writer = await run(["token", "create", "writer", "--grant", "full_access:/"]);
    expect(writer.code).toBe(0);
    const denied = await run(["version", "destroy", "/gone/key", "1", "--yes"], {
      env: { COFFER_TOKEN: writer.out.trim() },
    });
    expect(denied.code).toBe(4);
    expect(denied.err).toContain("(PERMISSION_DENIED)");

    const destroyed = await run(["version", "destroy", "/gone/key", "1", "--yes"]);
    expect(destroyed.err).toBe("");
    expect(destroyed).toMatchObject({
      code: 0,
      out: "Destroyed version 1 of /gone/key: its payload is gone for good.\n",
    });
    const access = await run(["version", "access", "/gone/key", "1"]);
    expect(access.code).toBe(5);
    expect(access.err).toContain("destroyed");
    const scheduled = await run(["version", "delete", "/gone/key", "2"]);
    expect(scheduled.out).toBe(
      "Scheduled version 2 of /gone/key for deletion; undo with: coffer version restore /gone/key 2\n",
    );
    const events = await run(["audit", "list", "--method", "DestroySecretVersion", "-o", "json"]);
    const outcomes = (JSON.parse(events.out).events as { outcome: string; revision: string }[]).map(
      (e) => e.outcome,
    );
    expect(outcomes.sort()).toEqual(["OK", "PERMISSION_DENIED"]);
  });

  it("refuses an unreadable --from-file with exit code 1, whatever the reason", async () => {
    for (const [file, why] of [
      ["no-such-file.json", "no such file"],
      [".", "it is a folder, not a file"],
    ]) {
      const r = await run(["secret", "create", "/bad/file", "--from-file", file as string]);
      expect(r.code, file).toBe(1);
      expect(r.err, file).toBe(`coffer: cannot read --from-file ${file}: ${why}\n`);
    }
  });

  it("refuses without a token (exit 4, saying how to set one) and with a bad one", async () => {
    const none = await run(["secret", "list"], { env: { COFFER_TOKEN: undefined } });
    expect(none.code).toBe(4);
    expect(none.err).toContain("coffer: no token");
    expect(none.err).toContain("export COFFER_TOKEN=");
    expect(none.err).toContain("coffer login");
    const bad = await run(["secret", "list"], { env: { COFFER_TOKEN: "coffer_not-a-token" } });
    expect(bad.code).toBe(4);
    expect(bad.err).toContain("(UNAUTHENTICATED)");
    expect(bad.err).not.toContain("coffer_not-a-token");
  });

  it("creates a token whose value alone goes to stdout, and the agent renders with it (--once)", async () => {
    const token = await run(["token", "create", "sidecar", "--grant", "secret_access:/prod"]);
    expect(token.code).toBe(0);
    expect(token.out).toMatch(/^coffer_[A-Za-z0-9]+\n$/);
    expect(token.err).toMatch(
      new RegExp(`^Created token sidecar \\(id ${UUID}\\): secret_access@${projectId}:/prod\\.\\n`),
    );
    const value = token.out.trim();

    // A secret_access token reads payloads by path, and nothing else.
    const access = await run(["version", "access", "/prod/db", "--field", "password", "--raw"], {
      env: { COFFER_TOKEN: value },
    });
    expect(access).toMatchObject({ code: 0, out: password });
    const list = await run(["secret", "list"], { env: { COFFER_TOKEN: value } });
    expect(list.code).toBe(4);

    const tokens = await run(["token", "list", "-o", "json"]);
    const listed = JSON.parse(tokens.out).tokens as { name: string }[];
    expect(listed.map((t) => t.name)).toContain("sidecar");
    expect(tokens.out).not.toContain(value);

    const agentDir = path.join(work, "agent");
    await mkdir(agentDir);
    const config = await writeAgentConfig(path.join(agentDir, "agent.yaml"), {
      server: { url: server?.httpUrl },
      project_id: projectId,
      state_file: "state.json",
      secrets: [
        {
          path: "/prod",
          name: "db",
          destination: "db-password",
          format: "json_field",
          field: "password",
        },
      ],
    });
    const agent = await run(["agent", "--config", config, "--once"], {
      env: { COFFER_TOKEN: value },
    });
    expect(agent.code).toBe(0);
    expect(await readFile(path.join(agentDir, "db-password"), "utf8")).toBe(password);
    expect(agent.out).not.toContain(password);
    expect(agent.out).not.toContain(value);

    const missing = await run(["agent", "--config", path.join(agentDir, "none.yaml"), "--once"]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("cannot read config file");
  });

  it("lists the audit trail with filters", async () => {
    const events = await run([
      "audit",
      "list",
      "--secret",
      "/prod/db",
      "--method",
      "AccessSecretVersionByPath",
      "--outcome",
      "failed_precondition",
      "-o",
      "json",
    ]);
    expect(events.code).toBe(0);
    const listed = JSON.parse(events.out).events as Record<string, unknown>[];
    expect(listed.length).toBeGreaterThanOrEqual(1);
    for (const e of listed) {
      expect(e).toMatchObject({
        method: "coffer.secretmanager.v1.SecretService/AccessSecretVersionByPath",
        outcome: "FAILED_PRECONDITION",
        secretPath: "/prod",
        secretName: "db",
      });
    }
  });

  it("answers the same through the installed command (the bundle) as from the sources", async () => {
    expect((await run(["secret", "create", "/bundle/s", "--data", "v1"])).code).toBe(0);
    const cases: { args: string[]; env?: Record<string, string> }[] = [
      { args: ["--version"] },
      { args: ["--help"] },
      { args: ["secret", "get", "--help"] },
      { args: ["secret", "get", "/bundle/s"] },
      { args: ["secret", "get", "/bundle/s", "-o", "json"] },
      { args: ["version", "access", "/bundle/s", "--raw"] },
      { args: ["version", "list", "/bundle/s"] },
      // Errors: of the command line, of the server, and without a server.
      { args: ["secret", "list", "--colour"] },
      { args: ["secret", "get", "/bundle/missing"] },
      { args: ["project", "list"], env: { COFFER_URL: "http://127.0.0.1:1" } },
      // The commands that import @coffer/server and @coffer/agent, which the
      // bundle leaves out: they must be found from the bundle too.
      { args: ["server"], env: { COFFER_HTTP_LISTEN: "not-an-address" } },
      { args: ["agent", "--config", "no-such-agent.yaml"] },
    ];
    for (const { args, env: extra } of cases) {
      const fromSources = await run(args, { env: extra });
      const installed = await run(args, { env: extra, installed: true });
      expect(installed, `coffer ${args.join(" ")}`).toEqual(fromSources);
    }
  });

  it("logs in to a profile file of mode 0600, uses it, and refuses it once others can read it", async () => {
    const profile = path.join(work, "profile", "config.json");
    const penv = {
      COFFER_CONFIG: profile,
      COFFER_TOKEN: undefined,
      COFFER_URL: undefined,
      COFFER_PROJECT: undefined,
    };
    const refused = await run(
      ["login", "--url", server?.httpUrl ?? "", "--token", "coffer_wrong"],
      { env: penv },
    );
    expect(refused.code).toBe(4);
    await expect(stat(profile)).rejects.toThrow();

    const login = await run(
      ["login", "--url", server?.httpUrl ?? "", "--token", "-", "--project", "demo"],
      {
        env: penv,
        stdin: `${env.COFFER_TOKEN}\n`,
      },
    );
    expect(login.err).toBe("");
    expect(login.out).toBe(
      `Logged in to ${server?.httpUrl}; saved profile "default" in ${profile} (mode 0600).\n`,
    );
    expect((await stat(profile)).mode & 0o777).toBe(0o600);

    // The project "demo" is found by name; the token comes from the file.
    const field = await run(["version", "access", "/prod/db", "--field", "password", "--raw"], {
      env: penv,
    });
    expect(field).toMatchObject({ code: 0, out: password });
    const show = await run(["profile", "show"], { env: penv });
    expect(show.out).toContain("token:    coffer_");
    expect(show.out).not.toContain(env.COFFER_TOKEN);

    await chmod(profile, 0o644);
    const loose = await run(["secret", "list"], { env: penv });
    expect(loose).toMatchObject({
      code: 2,
      out: "",
      err: `coffer: refusing to read profile file ${profile}: it holds tokens, and its group and other users can access it (mode 0644)\nhint: run: chmod 600 ${profile}\n`,
    });
  });
});

describe("coffer server", { timeout: 2 * SLOW }, () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await removeTempDir(dir);
  });

  it("serves like npm start: prints the admin token once on stderr, answers calls, stops on SIGTERM", async () => {
    dir = await makeTempDir("cli-server");
    const senv = serverEnv({ COFFER_DATA_DIR: path.join(dir, "data") });
    const server = spawn(process.execPath, ["--import", TSX_LOADER, CLI_MAIN, "server"], {
      cwd: dir,
      env: senv,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = server;
    let out = "";
    let err = "";
    server.stdout?.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    server.stderr?.on("data", (c: Buffer) => {
      err += c.toString("utf8");
    });
    const exited = new Promise<number | null>((resolve) =>
      server.once("close", (code) => resolve(code)),
    );
    const deadline = Date.now() + 120_000;
    while (!out.includes("coffer is serving")) {
      if (Date.now() > deadline || server.exitCode !== null) {
        throw new Error(
          `coffer server did not start\n--- stderr ---\n${err}\n--- stdout ---\n${out}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const serving = out.split("\n").find((l) => l.includes("coffer is serving")) ?? "";
    const http = (JSON.parse(serving) as { http: string }).http;
    const token = /^ {2}(coffer_[A-Za-z0-9]+)$/m.exec(err)?.[1];
    expect(token).toBeDefined();
    expect(err).toContain("Coffer created an admin token. It is shown this once; store it now:");
    expect(out).not.toContain(token ?? "coffer_");

    const created = await coffer(["project", "create", "first"], {
      env: {
        COFFER_URL: `http://${http}`,
        COFFER_TOKEN: token,
        COFFER_CONFIG: path.join(dir, "none.json"),
      },
    });
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/^Created project first/);

    server.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(out).toContain("shutting down: draining calls");
  });
});
