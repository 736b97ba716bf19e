import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { serverBackends, type TestServer } from "@coffer/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../run.ts";
import { memoryContext } from "../test-io.ts";

/** `coffer token create --format`, against a real server. */

const backend = serverBackends[0];
let server: TestServer;
let dir = "";
beforeAll(async () => {
  if (backend === undefined) throw new Error("no server backend");
  server = await backend.start();
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-token-"));
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function coffer(token: string, ...argv: string[]) {
  const ctx = memoryContext({
    env: {
      COFFER_CONFIG: path.join(dir, "config.json"),
      COFFER_URL: `http://127.0.0.1:${server.server.httpPort}`,
      COFFER_TOKEN: token,
    },
  });
  const code = await run(argv, ctx);
  return { code, stdout: ctx.stdout.text, stderr: ctx.stderr.text };
}

const ACCESS_KEY = /^SCW[A-Z0-9]{17}$/;
const SECRET_KEY = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("coffer token create --format", () => {
  let project = "";
  beforeAll(async () => {
    const created = await coffer(server.adminToken, "project", "create", "cli-scw", "-o", "json");
    project = JSON.parse(created.stdout).project.id as string;
  });

  it("scaleway prints the access key id and the secret key as SCW_ lines, and the key works", async () => {
    const r = await coffer(
      server.adminToken,
      "token",
      "create",
      "terraform",
      "--project",
      project,
      "--grant",
      "full_access:/infra",
      "--format",
      "scaleway",
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines).toHaveLength(3);
    const [accessKey, secretKey] = [lines[0] ?? "", lines[1] ?? ""].map((l) => l.split("=")[1]);
    expect(lines[0]).toMatch(/^SCW_ACCESS_KEY=/);
    expect(accessKey).toMatch(ACCESS_KEY);
    expect(lines[1]).toMatch(/^SCW_SECRET_KEY=/);
    expect(secretKey).toMatch(SECRET_KEY);
    expect(r.stderr).toContain("accessKey and secretKey (env SCW_ACCESS_KEY and SCW_SECRET_KEY)");
    expect(r.stderr).not.toContain(secretKey);

    // The secret key is a token for Coffer's own clients too, within its grant.
    const mine = await coffer(
      secretKey ?? "",
      "secret",
      "create",
      "/infra/state",
      "--project",
      project,
      "--data",
      "v",
    );
    expect(mine.code, mine.stderr).toBe(0);
    const outside = await coffer(
      secretKey ?? "",
      "secret",
      "create",
      "/app/x",
      "--project",
      project,
    );
    expect(outside.code).toBe(4);

    // Listed by its access key id.
    const listed = await coffer(server.adminToken, "token", "list", "--project", project);
    expect(listed.stdout).toContain(accessKey);
    expect(listed.stdout).not.toContain(secretKey);
  });

  it("scaleway with -o json gives both fields; the default gives a Coffer token", async () => {
    const json = await coffer(
      server.adminToken,
      "token",
      "create",
      "sdk",
      "--project",
      project,
      "--grant",
      "read_only",
      "--format",
      "SCALEWAY",
      "-o",
      "json",
    );
    expect(json.code, json.stderr).toBe(0);
    const res = JSON.parse(json.stdout);
    expect(res.accessKey).toMatch(ACCESS_KEY);
    expect(res.value).toMatch(SECRET_KEY);
    expect(res.token.accessKey).toBe(res.accessKey);
    expect(res.token.prefix).toBe(res.accessKey);

    const plain = await coffer(
      server.adminToken,
      "token",
      "create",
      "plain",
      "--project",
      project,
      "--grant",
      "read_only",
    );
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^coffer_[0-9A-Za-z]{49}\n$/);
  });

  it("refuses an unknown format before any call, naming the choices", async () => {
    const r = await coffer(
      "coffer_x",
      "token",
      "create",
      "x",
      "--grant",
      "admin",
      "--format",
      "aws",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--format must be one of coffer, scaleway (got "aws")');
  });

  it("is listed in the command's help", async () => {
    const r = await coffer("", "token", "create", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--format NAME +the value's form: coffer, scaleway/);
  });
});
