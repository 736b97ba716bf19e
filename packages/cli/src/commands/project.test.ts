import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { serverBackends, type TestServer } from "@coffer/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../run.ts";
import { memoryContext } from "../test-io.ts";

/**
 * `coffer project rename|delete` and list paging through page tokens,
 * against a real server (issue 11, items 14 and 15).
 */

const backend = serverBackends[0];
let server: TestServer;
let dir = "";
beforeAll(async () => {
  if (backend === undefined) throw new Error("no server backend");
  server = await backend.start();
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-project-"));
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function coffer(...argv: string[]) {
  const ctx = memoryContext({
    env: {
      COFFER_CONFIG: path.join(dir, "config.json"),
      COFFER_URL: `http://127.0.0.1:${server.server.httpPort}`,
      COFFER_TOKEN: server.adminToken,
    },
  });
  const code = await run(argv, ctx);
  return { code, stdout: ctx.stdout.text, stderr: ctx.stderr.text };
}

describe("coffer project", () => {
  it("renames by name or id; a taken name exits 5", async () => {
    expect((await coffer("project", "create", "cli-one")).code).toBe(0);
    expect((await coffer("project", "create", "cli-two")).code).toBe(0);
    const renamed = await coffer("project", "rename", "cli-one", "cli-uno");
    expect(renamed.code).toBe(0);
    expect(renamed.stdout).toMatch(/^Renamed project [0-9a-f-]{36} to cli-uno\.\n$/);
    const taken = await coffer("project", "rename", "cli-uno", "cli-two");
    expect(taken.code).toBe(5);
    expect(taken.stderr).toContain('a project named "cli-two" already exists');
    const again = await coffer("project", "create", "cli-two");
    expect(again.code).toBe(5);
  });

  it("delete is refused while the project holds a secret, --force destroys it", async () => {
    const created = await coffer("project", "create", "cli-doomed", "-o", "json");
    const id = JSON.parse(created.stdout).project.id as string;
    const secret = await coffer("secret", "create", "/app/key", "--project", id, "--data", "v");
    expect(secret.code, secret.stderr).toBe(0);
    const refused = await coffer("project", "delete", "cli-doomed");
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain("1 live, 0 scheduled for deletion");
    expect(refused.stderr).toContain("--force");
    const forced = await coffer("project", "delete", "cli-doomed", "--force");
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain("1 secrets destroyed for good");
    const gone = await coffer("secret", "create", "/app/key", "--project", id, "--data", "v");
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain(`project ${id} not found`);
  });
});

describe("list paging", () => {
  it("--page-token continues where a page stopped; --all reads every page once", async () => {
    const created = await coffer("project", "create", "cli-paging", "-o", "json");
    const id = JSON.parse(created.stdout).project.id as string;
    for (let i = 0; i < 5; i++) {
      const r = await coffer("secret", "create", `/s-${i}`, "--project", id);
      expect(r.code, r.stderr).toBe(0);
    }
    const first = await coffer("secret", "list", "--project", id, "--page-size", "2");
    expect(first.stdout).toContain("s-0");
    const token = /--page-token (\S+) for more/.exec(first.stderr)?.[1];
    expect(token, first.stderr).toBeDefined();
    const second = await coffer(
      "secret",
      "list",
      "--project",
      id,
      "--page-size",
      "2",
      "--page-token",
      token ?? "",
    );
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("s-2");
    expect(second.stdout).toContain("s-3");
    expect(second.stdout).not.toContain("s-1");
    const all = await coffer("secret", "list", "--project", id, "--all", "-o", "json");
    const names = (JSON.parse(all.stdout).secrets as { name: string }[]).map((s) => s.name);
    expect(names).toEqual(["s-0", "s-1", "s-2", "s-3", "s-4"]);
    const bad = await coffer("secret", "list", "--project", id, "--page-token", "garbage");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("page_token");
  });
});
