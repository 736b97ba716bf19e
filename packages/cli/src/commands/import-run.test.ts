import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Role, SecretType } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { run as runCommand } from "../run.ts";
import { memoryContext } from "../test-io.ts";

/**
 * The command's flow over a fake connection: what it calls, what it prints
 * and its exit code, when a row fails, when it may not ask, and when the
 * token may not read payloads. The server's side is the end-to-end test's
 * (test/e2e/cli-import-export.test.ts).
 */

const calls: string[] = [];
let grants: { projectId: string; role: Role; pathPrefix: string }[] = [];

const fake = {
  settings: { region: "", project: "11111111-1111-4111-8111-111111111111" },
  secrets: {
    listSecrets: async () => ({
      secrets: [
        { id: "s-same", name: "SAME", type: SecretType.OPAQUE },
        { id: "s-old", name: "OLD", type: SecretType.OPAQUE },
      ],
      nextPageToken: "",
    }),
    accessSecretVersion: async ({ secretId }: { secretId: string }) => {
      calls.push(`access ${secretId}`);
      return { data: new TextEncoder().encode(secretId === "s-same" ? "same" : "before") };
    },
    createSecret: async ({ name }: { name: string }) => {
      calls.push(`create ${name}`);
      if (name === "BROKEN") throw new ConnectError("secret quota reached", Code.ResourceExhausted);
      return { secret: { id: `id-${name}` } };
    },
    createSecretVersion: async ({ secretId }: { secretId: string }) => {
      calls.push(`version ${secretId}`);
      return { version: { revision: 2 } };
    },
  },
  admin: { getCaller: async () => ({ token: { grants } }) },
};

vi.mock("../connection.ts", () => ({
  connect: async () => fake,
  requireProject: async () => "11111111-1111-4111-8111-111111111111",
}));

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-import-"));
  await writeFile(
    path.join(dir, "app.env"),
    "NEW=n3w-s3cret\nSAME=same\nOLD=after-s3cret\nBROKEN=x-s3cret\n",
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  calls.length = 0;
  grants = [{ projectId: "", role: Role.ADMIN, pathPrefix: "" }];
});

describe("coffer import", () => {
  it("writes the rows it planned, reports each, and exits 1 when one failed", async () => {
    const ctx = memoryContext();
    const code = await runCommand(
      ["import", path.join(dir, "app.env"), "--path", "/prod", "--new-versions", "--yes"],
      ctx,
    );
    expect(code).toBe(1);
    expect(calls).toEqual([
      "access s-same",
      "access s-old",
      "create NEW",
      "version s-old",
      "create BROKEN",
    ]);
    expect(ctx.stdout.text).toContain("NEW     opaque  create       created        line 1\n");
    expect(ctx.stdout.text).toContain(
      "BROKEN  opaque  create       FAILED         line 4: secret quota reached (RESOURCE_EXHAUSTED)\n",
    );
    expect(ctx.stdout.text).toContain("2 written, 1 failed.\n");
    expect(ctx.stdout.text + ctx.stderr.text).not.toMatch(/s3cret/);
  });

  it("reads no payload when the token may not, and says so", async () => {
    grants = [{ projectId: "", role: Role.SECRET_WRITE, pathPrefix: "/" }];
    const ctx = memoryContext();
    const code = await runCommand(
      ["import", path.join(dir, "app.env"), "--path", "/prod", "--dry-run", "-o", "json"],
      ctx,
    );
    expect(code).toBe(0);
    expect(calls).toEqual([]);
    const report = JSON.parse(ctx.stdout.text) as {
      rows: { name: string; action: string; note: string }[];
    };
    expect(report.rows.find((r) => r.name === "SAME")).toMatchObject({
      action: "exists",
      note: expect.stringContaining("the token may not read payloads"),
    });
  });

  it("refuses to write without --yes when it cannot ask, and writes nothing", async () => {
    const ctx = memoryContext();
    const code = await runCommand(["import", path.join(dir, "app.env"), "--path", "/prod"], ctx);
    expect(code).toBe(2);
    expect(ctx.stderr.text).toContain("give --yes to import without a prompt");
    expect(calls).toEqual([]);
  });

  it("asks on a terminal: y writes, anything else writes nothing", async () => {
    for (const [answer, code, writes] of [
      ["y\n", 1, ["create NEW", "create BROKEN"]],
      ["no\n", 1, []],
    ] as const) {
      calls.length = 0;
      const ctx = memoryContext({ stdin: answer });
      Object.assign(ctx.io.stdin, { isTTY: true });
      const status = await runCommand(
        ["import", path.join(dir, "app.env"), "--path", "/prod"],
        ctx,
      );
      expect(status).toBe(code);
      expect(ctx.stderr.text).toContain("Write 2 secrets to /prod? [y/N] ");
      expect(ctx.stdout.text).toContain("NAME    TYPE    ACTION     DETAIL\n");
      expect(calls.filter((c) => !c.startsWith("access"))).toEqual(writes);
      if (writes.length === 0) expect(ctx.stderr.text).toContain("coffer: nothing was written\n");
    }
  });

  it("needs --path, and a known --format", async () => {
    const ctx = memoryContext();
    expect(await runCommand(["import", path.join(dir, "app.env")], ctx)).toBe(2);
    expect(ctx.stderr.text).toContain("--path is required");
    const bad = memoryContext();
    expect(await runCommand(["import", "-", "--path", "/p", "--format", "toml"], bad)).toBe(2);
    expect(bad.stderr.text).toContain("--format must be dotenv, json or yaml");
  });
});
