import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SecretType } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { run as runCommand } from "../run.ts";
import { memoryContext } from "../test-io.ts";

/**
 * The command's flow over a fake connection: nothing is read before the
 * refusals (single-access secrets, names that cannot be .env keys, an
 * existing file), and a file it created is removed when the export fails.
 * The server's side is test/e2e/cli-import-export.test.ts.
 */

const calls: string[] = [];
let listed: {
  id: string;
  name: string;
  path: string;
  type: SecretType;
  ephemeralPolicy?: object;
}[] = [];
let failAccess = false;

const fake = {
  settings: { region: "" },
  secrets: {
    listSecrets: async () => ({ secrets: listed, nextPageToken: "" }),
    accessSecretVersion: async ({ secretId }: { secretId: string }) => {
      calls.push(`access ${secretId}`);
      if (failAccess) throw new ConnectError("server gone", Code.Unavailable);
      return { data: new TextEncoder().encode(`value of ${secretId}`) };
    },
  },
};

vi.mock("../connection.ts", () => ({
  connect: async () => fake,
  requireProject: async () => "11111111-1111-4111-8111-111111111111",
}));

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "coffer-export-run-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  calls.length = 0;
  failAccess = false;
  listed = [
    { id: "a", name: "A", path: "/prod", type: SecretType.OPAQUE },
    { id: "b", name: "B", path: "/prod", type: SecretType.OPAQUE },
  ];
});

describe("coffer export", () => {
  it("writes the folder to stdout", async () => {
    const ctx = memoryContext();
    expect(await runCommand(["export", "--path", "/prod", "--format", "dotenv"], ctx)).toBe(0);
    expect(ctx.stdout.text).toBe("A='value of a'\nB='value of b'\n");
    expect(ctx.stderr.text).toBe("");
  });

  it("refuses single-access secrets and bad .env names before reading anything", async () => {
    listed.push({
      id: "c",
      name: "ONCE",
      path: "/prod",
      type: SecretType.OPAQUE,
      ephemeralPolicy: { expiresOnceAccessed: true },
    });
    const ctx = memoryContext();
    expect(await runCommand(["export", "--path", "/prod", "--format", "json"], ctx)).toBe(5);
    expect(ctx.stderr.text).toContain("(reading one consumes it): /prod/ONCE\n");

    listed = [{ id: "d", name: "1st", path: "/prod", type: SecretType.OPAQUE }];
    const bad = memoryContext();
    expect(await runCommand(["export", "--path", "/prod", "--format", "dotenv"], bad)).toBe(1);
    expect(bad.stderr.text).toContain("cannot export 1st to .env: a .env key is letters");
    expect(calls).toEqual([]);
  });

  it("removes the file it created when the export fails, and needs a format", async () => {
    failAccess = true;
    const file = path.join(dir, "out.json");
    const ctx = memoryContext();
    expect(await runCommand(["export", "--path", "/prod", "--output-file", file], ctx)).toBe(6);
    expect(await readdir(dir)).toEqual([]);

    const unnamed = memoryContext();
    expect(
      await runCommand(
        ["export", "--path", "/prod", "--output-file", path.join(dir, "x")],
        unnamed,
      ),
    ).toBe(2);
    expect(unnamed.stderr.text).toContain("give --format dotenv, json or yaml");
  });
});
