import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "./run.ts";
import { memoryContext } from "./test-io.ts";

/**
 * The command line end to end without a server: what people see for help,
 * for mistakes on the command line, and for missing settings.
 */

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-run-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function coffer(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const ctx = memoryContext({ env: { COFFER_CONFIG: path.join(dir, "config.json"), ...env } });
  const code = await run(argv, ctx);
  return { code, stdout: ctx.stdout.text, stderr: ctx.stderr.text };
}

describe("coffer without a server", () => {
  it("prints help for the tool, a group and a command, exit 0", async () => {
    const top = await coffer(["--help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("Usage:\n  coffer COMMAND [flags]");
    expect(top.stdout).toContain("Exit codes:");
    const secret = await coffer(["secret", "--help"]);
    expect(secret.stdout).toContain(
      "  browse     show the folders and secrets directly under a folder",
    );
    const access = await coffer(["version", "access", "--help"]);
    expect(access.code).toBe(0);
    expect(access.stdout).toContain("coffer version access SECRET [REVISION] [flags]");
    expect(access.stdout).toContain("--raw");
    expect(access.stderr).toBe("");
  });

  it("prints a group's help on stderr with exit 2 when its command is missing", async () => {
    const r = await coffer(["secret"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^coffer secret: missing command\n\ncoffer secret: /);
  });

  it("names an unknown flag and points at --help, exit 2", async () => {
    const r = await coffer(["secret", "list", "--colour"]);
    expect(r).toEqual({
      code: 2,
      stdout: "",
      stderr:
        'coffer: unknown flag --colour for "coffer secret list"\nhint: see "coffer secret list --help"\n',
    });
  });

  it("refuses a path without its leading slash, naming the rule, before any call", async () => {
    const r = await coffer(["version", "access", "prod/db"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'coffer: bad secret "prod/db": a secret is named by its path and name, starting with "/" (e.g. /prod/db), or by its id (a UUID)\nhint: did you mean "/prod/db"?\n',
    );
  });

  it("says how to set a token when there is none, exit 4", async () => {
    const r = await coffer(["secret", "list"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("coffer: no token");
    expect(r.stderr).toContain("hint: export COFFER_TOKEN=");
  });

  it("says how to set a project when there is none, exit 2", async () => {
    const r = await coffer(["secret", "list"], {
      COFFER_TOKEN: "coffer_x",
      COFFER_URL: "http://127.0.0.1:1",
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("coffer: no project");
    expect(r.stderr).toContain("export COFFER_PROJECT=ID");
    expect(r.stderr).not.toContain("coffer_x");
  });

  it("reports an unreachable server with exit 6 and where it looked", async () => {
    const r = await coffer(["project", "list"], {
      COFFER_TOKEN: "coffer_x",
      COFFER_URL: "http://127.0.0.1:1",
    });
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("(UNAVAILABLE)");
    expect(r.stderr).toContain("hint: is a server running at http://127.0.0.1:1?");
    expect(r.stderr).not.toContain("coffer_x");
  });

  it("refuses --raw with -o json", async () => {
    const r = await coffer(["version", "access", "/a", "--raw", "-o", "json"], {
      COFFER_TOKEN: "t",
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--raw and -o json cannot be combined");
  });

  it("prints its version", async () => {
    expect((await coffer(["--version"])).stdout).toMatch(/^coffer \d+\.\d+\.\d+\n$/);
  });
});
