import { randomBytes, randomUUID } from "node:crypto";
import { readdir } from "node:fs/promises";
import {
  AdminService,
  type CofferClient,
  createCofferClient,
  createCofferTransport,
  Role,
} from "@coffer/client";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * Closed by default, as a user meets it: `npm start` on an empty data folder
 * with no token configured prints an admin token once; with it, the user
 * creates a project and a `secret_access` token narrowed to /prod, and that
 * token reads /prod/db and nothing else. A restart prints no token again.
 */

/** A Coffer token, as a secret scanner (or a user's eye) finds one. */
const TOKEN = /coffer_[0-9A-Za-z]{49}/;

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  return promise.then(
    (res) => {
      throw new Error(`expected the call to fail; it returned ${JSON.stringify(res)}`);
    },
    (err: unknown) => ConnectError.from(err),
  );
}

/** How many times `needle` occurs in `text`. */
function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/**
 * Waits until the server's stderr holds a token. The banner is written
 * before the "coffer is serving" line, but through another pipe, which the
 * test may read later.
 */
async function stderrToken(server: ServerProcess, timeoutMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = server.stderr.match(new RegExp(TOKEN.source, "g")) ?? [];
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("access control on a fresh installation", () => {
  let dataDir: string | undefined;
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  /** The admin token, as read from the first start's stderr. */
  let adminToken = "";
  /** The secret_access token narrowed to /prod of `projectId`. */
  let readerToken = "";
  let revokedToken = "";
  let projectId = "";
  let otherProjectId = "";
  const prodDb = Buffer.from(`{"password": "prod-${randomBytes(12).toString("hex")}"}`);
  const stagingDb = Buffer.from(`{"password": "staging-${randomBytes(12).toString("hex")}"}`);
  const otherDb = Buffer.from(`{"password": "other-${randomBytes(12).toString("hex")}"}`);

  const admin = (server: ServerProcess): Client<typeof AdminService> =>
    createClient(
      AdminService,
      createCofferTransport({ url: server.httpUrl, token: adminToken, timeoutMs: 30_000 }),
    );
  const secrets = (server: ServerProcess, token?: string): CofferClient =>
    createCofferClient({
      url: server.httpUrl,
      ...(token !== undefined && { token }),
      timeoutMs: 30_000,
    });

  beforeAll(async () => {
    dataDir = await makeTempDir("access-control");
    expect(await readdir(dataDir)).toEqual([]);
    first = await startServer({
      env: { COFFER_DATA_DIR: dataDir, COFFER_BOOTSTRAP_TOKEN: undefined },
    });
  });

  afterAll(async () => {
    first?.kill();
    second?.kill();
    await Promise.all([first?.exited, second?.exited]);
    await removeTempDir(dataDir);
  });

  it("prints an admin token once, on stderr, with a ready export COFFER_TOKEN= line", async () => {
    if (first === undefined) throw new Error("no server");
    const found = await stderrToken(first);
    adminToken = found[0] ?? "";
    // The banner shows it, then as a ready line for the shell, and nothing else.
    expect(found).toEqual([adminToken, adminToken]);
    expect(first.stderr).toContain(`\n  ${adminToken}\n`);
    expect(first.stderr).toContain(`\n  export COFFER_TOKEN=${adminToken}\n`);
    expect(first.stdout).not.toMatch(TOKEN);
    expect(
      first.logs().some((l) => l.msg === "created an admin token (printed once to stderr)"),
    ).toBe(true);
  });

  it("refuses a call without a valid token with UNAUTHENTICATED", async () => {
    if (first === undefined) throw new Error("no server");
    const anonymous = secrets(first);
    const err = await refusal(anonymous.listSecrets({ projectId: randomUUID() }));
    expect(err.code).toBe(Code.Unauthenticated);
    const create = await refusal(
      createClient(AdminService, createCofferTransport({ url: first.httpUrl })).createProject({
        name: "anonymous",
      }),
    );
    expect(create.code).toBe(Code.Unauthenticated);
    // Well-formed, but never issued.
    const forged = await refusal(
      secrets(first, newToken()).listSecrets({ projectId: randomUUID() }),
    );
    expect(forged.code).toBe(Code.Unauthenticated);
  });

  it("creates a project and a secret_access token narrowed to /prod with the admin token", async () => {
    if (first === undefined) throw new Error("no server");
    const adminApi = admin(first);
    const project = (await adminApi.createProject({ name: "shop" })).project;
    const other = (await adminApi.createProject({ name: "other" })).project;
    projectId = project?.id ?? "";
    otherProjectId = other?.id ?? "";
    expect(projectId).not.toBe("");
    expect(otherProjectId).not.toBe(projectId);

    const created = await adminApi.createToken({
      name: "prod reader",
      grants: [{ projectId, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
    });
    readerToken = created.value;
    expect(readerToken).toMatch(new RegExp(`^${TOKEN.source}$`));
    expect(created.token?.prefix).toBe(readerToken.slice(0, created.token?.prefix.length));
    expect(created.token?.grants).toMatchObject([
      { projectId, role: Role.SECRET_ACCESS, pathPrefix: "/prod" },
    ]);

    const coffer = secrets(first, adminToken);
    await coffer.createSecret({
      projectId,
      path: "/prod",
      name: "db",
      firstVersion: { data: prodDb },
    });
    await coffer.createSecret({
      projectId,
      path: "/staging",
      name: "db",
      firstVersion: { data: stagingDb },
    });
    await coffer.createSecret({
      projectId: otherProjectId,
      path: "/prod",
      name: "db",
      firstVersion: { data: otherDb },
    });
  });

  it("lets the narrowed token read /prod/db and nothing else", async () => {
    if (first === undefined) throw new Error("no server");
    const reader = secrets(first, readerToken);
    const read = await reader.accessSecretVersionByPath({
      projectId,
      path: "/prod",
      name: "db",
      revision: "latest_enabled",
    });
    expect(Buffer.from(read.data).equals(prodDb)).toBe(true);

    // Outside its path prefix: the same answer as for a secret that does not exist.
    const staging = await refusal(
      reader.accessSecretVersionByPath({ projectId, path: "/staging", name: "db", revision: "1" }),
    );
    expect(staging.code).toBe(Code.NotFound);
    const nowhere = await refusal(
      reader.accessSecretVersionByPath({
        projectId,
        path: "/staging",
        name: "absent",
        revision: "1",
      }),
    );
    expect(nowhere.code).toBe(Code.NotFound);
    expect(staging.rawMessage).toBe(nowhere.rawMessage.replace('"absent"', '"db"'));

    // Another project: likewise.
    const other = await refusal(
      reader.accessSecretVersionByPath({
        projectId: otherProjectId,
        path: "/prod",
        name: "db",
        revision: "1",
      }),
    );
    expect(other.code).toBe(Code.NotFound);
    const unknownProject = randomUUID();
    const noProject = await refusal(
      reader.accessSecretVersionByPath({
        projectId: unknownProject,
        path: "/prod",
        name: "db",
        revision: "1",
      }),
    );
    expect(noProject.code).toBe(Code.NotFound);
    expect(other.rawMessage).toBe(noProject.rawMessage.replace(unknownProject, otherProjectId));

    // secret_access reads payloads; it cannot write, even under /prod.
    const write = await refusal(
      reader.createSecret({
        projectId,
        path: "/prod",
        name: "new",
        firstVersion: { data: prodDb },
      }),
    );
    expect(write.code).toBe(Code.PermissionDenied);

    for (const err of [staging, other, write]) {
      for (const payload of [prodDb, stagingDb, otherDb]) {
        expect(err.rawMessage).not.toContain(payload.toString());
      }
    }

    // A client with its headers swapped sends its token as the request id too:
    // the call is served under a request id of the server's own (the output
    // scan at the end finds the token nowhere).
    let echoed: string | null = null;
    await reader.accessSecretVersionByPath(
      { projectId, path: "/prod", name: "db", revision: "1" },
      {
        headers: { "x-request-id": readerToken },
        onHeader: (h) => (echoed = h.get("x-request-id")),
      },
    );
    expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses a revoked token with UNAUTHENTICATED right after revocation", async () => {
    if (first === undefined) throw new Error("no server");
    const adminApi = admin(first);
    const created = await adminApi.createToken({
      name: "short-lived reader",
      grants: [{ projectId, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
    });
    revokedToken = created.value;
    const reader = secrets(first, revokedToken);
    const before = await reader.accessSecretVersionByPath({
      projectId,
      path: "/prod",
      name: "db",
      revision: "1",
    });
    expect(Buffer.from(before.data).equals(prodDb)).toBe(true);

    const revoked = await adminApi.revokeToken({ tokenId: created.token?.id ?? "" });
    expect(revoked.token?.revokedAt).toBeDefined();
    const after = await refusal(
      reader.accessSecretVersionByPath({ projectId, path: "/prod", name: "db", revision: "1" }),
    );
    expect(after.code).toBe(Code.Unauthenticated);
  });

  it("restarts on the same data folder without printing a token; the tokens still hold", async () => {
    if (first === undefined || dataDir === undefined) throw new Error("no server");
    expect(await first.stop()).toEqual({ code: 0, signal: null });
    second = await startServer({
      env: { COFFER_DATA_DIR: dataDir, COFFER_BOOTSTRAP_TOKEN: undefined },
    });

    const projects = await admin(second).listProjects({});
    expect(projects.projects.map((p) => p.id).sort()).toEqual([projectId, otherProjectId].sort());
    const read = await secrets(second, readerToken).accessSecretVersionByPath({
      projectId,
      path: "/prod",
      name: "db",
      revision: "latest_enabled",
    });
    expect(Buffer.from(read.data).equals(prodDb)).toBe(true);
    const revoked = await refusal(
      secrets(second, revokedToken).accessSecretVersionByPath({
        projectId,
        path: "/prod",
        name: "db",
        revision: "1",
      }),
    );
    expect(revoked.code).toBe(Code.Unauthenticated);

    // Once it has exited, its output is complete.
    expect(await second.stop()).toEqual({ code: 0, signal: null });
    expect(second.stderr).not.toMatch(TOKEN);
    expect(second.stdout).not.toMatch(TOKEN);
    expect(second.logs().some((l) => String(l.msg).includes("admin token"))).toBe(false);
  });

  it("never wrote a token anywhere but the one banner on stderr", () => {
    const servers = [first, second].flatMap((s) => (s === undefined ? [] : [s]));
    expect(servers).toHaveLength(2);
    // The scan covers real output: the calls above, with every token, were logged.
    const calls = servers.flatMap((s) => s.logs()).filter((l) => l.msg === "call");
    expect(calls.filter((l) => l.code === "OK").length).toBeGreaterThanOrEqual(10);
    expect(calls.filter((l) => l.code === "UNAUTHENTICATED").length).toBeGreaterThanOrEqual(5);

    const stdout = servers.map((s) => s.stdout).join("");
    const stderr = servers.map((s) => s.stderr).join("");
    for (const token of [adminToken, readerToken, revokedToken]) {
      expect(token).toMatch(/^coffer_/);
      expect(occurrences(stdout, token)).toBe(0);
    }
    // The banner's two lines: the token, and `export COFFER_TOKEN=` it.
    expect(occurrences(stderr, adminToken)).toBe(2);
    expect(occurrences(stderr, readerToken)).toBe(0);
    expect(occurrences(stderr, revokedToken)).toBe(0);
  });
});
