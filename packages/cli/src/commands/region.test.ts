import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateToken } from "@coffer/server";
import { serverBackends, type TestServer } from "@coffer/server/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../run.ts";
import { memoryContext } from "../test-io.ts";

/** `coffer region list` against a real server. */

const backend = serverBackends[0];
let server: TestServer;
let dir = "";
beforeAll(async () => {
  if (backend === undefined) throw new Error("no server backend");
  server = await backend.start();
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-region-"));
}, 120_000);
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

describe("coffer region list", () => {
  it("lists the server's regions, the default first, as a table or JSON", async () => {
    const table = await coffer(server.adminToken, "region", "list");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toBe("REGION  DEFAULT\nlocal   yes\n");
    const json = await coffer(server.adminToken, "region", "list", "-o", "json");
    expect(JSON.parse(json.stdout)).toEqual({
      regions: ["local"],
      defaultRegion: "local",
    });
  });

  it("is refused without a valid token (exit 4)", async () => {
    const refused = await coffer(generateToken().value, "region", "list");
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe("");
  });
});
