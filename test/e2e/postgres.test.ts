import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  type CofferClient,
  createCofferClient,
  EphemeralAction,
  SecretType,
  VersionStatus,
} from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * Replicas: two server processes over one Postgres database, sharing nothing
 * but the database and the master keys. Runs whenever TEST_DATABASE_URL is
 * set; under CI a missing TEST_DATABASE_URL fails the run instead of
 * skipping it.
 */

const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error(
    "CI is set but TEST_DATABASE_URL is not: the Postgres end-to-end tests must run in CI",
  );
}

/** The clients a test uses against one server, one per protocol and HTTP version. */
interface Clients {
  grpc: CofferClient;
  connectH2: CofferClient;
  connectH1: CofferClient;
  grpcWebH1: CofferClient;
}

function clientsFor(server: ServerProcess): Clients {
  const timeoutMs = 30_000;
  const token = server.token;
  return {
    grpc: createCofferClient({ url: server.grpcUrl, protocol: "grpc", token, timeoutMs }),
    connectH2: createCofferClient({ url: server.httpUrl, httpVersion: "2", token, timeoutMs }),
    connectH1: createCofferClient({ url: server.httpUrl, httpVersion: "1.1", token, timeoutMs }),
    grpcWebH1: createCofferClient({
      url: server.httpUrl,
      protocol: "grpc-web",
      httpVersion: "1.1",
      token,
      timeoutMs,
    }),
  };
}

/** Counts outcomes by name: "OK" or the error code's name. */
function tally(outcomes: PromiseSettledResult<unknown>[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const name = o.status === "fulfilled" ? "OK" : Code[ConnectError.from(o.reason).code];
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

const onPostgres = runUnless(
  testDatabaseUrl ? undefined : "needs TEST_DATABASE_URL (two servers on one Postgres)",
);

describe("two server processes on one Postgres database", onPostgres, () => {
  let admin: postgres.Sql | undefined;
  let databaseName: string | undefined;
  let dataDir: string | undefined;
  /** The replicas' database, for a test that holds locks in it. */
  let databaseUrl = "";
  const servers: ServerProcess[] = [];
  let a: Clients;
  let b: Clients;
  let projectId = "";

  beforeAll(async () => {
    if (!testDatabaseUrl) throw new Error("unreachable: the suite is skipped");
    admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
    databaseName = `coffer_e2e_${randomBytes(6).toString("hex")}`;
    await admin.unsafe(`create database ${databaseName}`);
    const url = new URL(testDatabaseUrl);
    url.pathname = `/${databaseName}`;
    databaseUrl = url.toString();
    dataDir = await makeTempDir("postgres");
    const env = {
      COFFER_DATABASE_URL: url.toString(),
      COFFER_MASTER_KEYS: `e2e-1:${randomBytes(32).toString("base64")}`,
      // One admin token for both: whichever server bootstraps the empty
      // database creates it, and the other finds a token there and ignores it.
      COFFER_BOOTSTRAP_TOKEN: newToken(),
      // Not used with Postgres, but kept out of the source tree regardless.
      COFFER_DATA_DIR: dataDir,
    };
    // Both at once, on an empty database: migrations run under a lock.
    const started = await Promise.allSettled([startServer({ env }), startServer({ env })]);
    for (const s of started) if (s.status === "fulfilled") servers.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const [first, second] = servers;
    if (first === undefined || second === undefined) throw new Error("two servers expected");
    a = clientsFor(first);
    b = clientsFor(second);
    projectId = await first.createProject();
  });

  afterAll(async () => {
    for (const server of servers) server.kill();
    await Promise.all(servers.map((s) => s.exited));
    if (admin !== undefined && databaseName !== undefined) {
      await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
    }
    await admin?.end();
    await removeTempDir(dataDir);
  });

  it("creates the admin token once between two servers starting on an empty database", () => {
    const created = servers.filter((s) =>
      s.logs().some((l) => l.msg === "created the admin token given by COFFER_BOOTSTRAP_TOKEN"),
    );
    expect(created).toHaveLength(1);
    // Given, so never echoed.
    for (const server of servers) {
      expect(server.stdout + server.stderr).not.toContain(server.token);
    }
  });

  it("reads through one server what was written through the other", async () => {
    const p1 = Buffer.from(`{"password": "${randomBytes(8).toString("hex")}"}`);
    const created = await a.connectH2.createSecret({
      projectId,
      path: "/replicas",
      name: "shared",
      type: SecretType.KEY_VALUE,
      firstVersion: { data: p1 },
    });
    const secretId = created.secret?.id ?? "";
    const read = await b.grpc.accessSecretVersion({ secretId, revision: "latest_enabled" });
    expect(read.revision).toBe(1);
    expect(Buffer.from(read.data).equals(p1)).toBe(true);
    expect(read.dataCrc32).toBe(crc32(p1));

    const p2 = Buffer.from(`{"password": "${randomBytes(8).toString("hex")}"}`);
    const added = await b.grpcWebH1.createSecretVersion({ secretId, data: p2 });
    expect(added.version?.revision).toBe(2);
    const back = await a.grpc.accessSecretVersionByPath({
      projectId,
      path: "/replicas",
      name: "shared",
      revision: "latest",
    });
    expect(back.revision).toBe(2);
    expect(Buffer.from(back.data).equals(p2)).toBe(true);
  });

  it.each([
    ["disable", EphemeralAction.DISABLE, VersionStatus.DISABLED],
    ["delete", EphemeralAction.DELETE, VersionStatus.DELETED],
  ])(
    "serves a single-access version (action %s) exactly once out of 200 concurrent reads across both servers",
    async (label, action, after) => {
      const payload = randomBytes(1024);
      const created = await a.connectH2.createSecret({
        projectId,
        path: "/replicas",
        name: `once-${label}`,
        ephemeralPolicy: { expiresOnceAccessed: true, action },
        firstVersion: { data: payload },
      });
      const secretId = created.secret?.id ?? "";
      // Warm every connection first, so that the 200 reads below race each
      // other rather than connection setup.
      await Promise.all(
        [...Object.values(a), ...Object.values(b)].map((c) =>
          c.getSecretVersion({ secretId, revision: "1" }),
        ),
      );

      // 100 reads per server, 50 per protocol, interleaved.
      const lanes = [a.grpc, b.grpcWebH1, a.connectH2, b.connectH1];
      const calls = Array.from({ length: 200 }, (_, i) =>
        lanes[i % lanes.length]?.accessSecretVersion({ secretId, revision: "1" }),
      );
      const outcomes = await Promise.allSettled(calls);

      // Anything but FAILED_PRECONDITION first, with its message, to say why.
      const unexpected = outcomes.flatMap((o) => {
        if (o.status === "fulfilled") return [];
        const err = ConnectError.from(o.reason);
        return err.code === Code.FailedPrecondition ? [] : [`${Code[err.code]}: ${err.message}`];
      });
      expect(unexpected).toEqual([]);
      expect(tally(outcomes)).toEqual({ OK: 1, FailedPrecondition: 199 });
      const served = outcomes.flatMap((o) =>
        o.status === "fulfilled" && o.value ? [o.value] : [],
      );
      expect(Buffer.from(served[0]?.data ?? []).equals(payload)).toBe(true);
      expect(served[0]?.dataCrc32).toBe(crc32(payload));

      const version = await b.grpc.getSecretVersion({ secretId, revision: "1" });
      expect(version.version?.status).toBe(after);
    },
  );

  // Last: it stops the second server.
  it("drains calls in flight on SIGTERM and exits with code 0", async () => {
    const [, second] = servers;
    if (second === undefined) throw new Error("no second server");
    const payload = randomBytes(4096);
    const created = await a.grpc.createSecret({
      projectId,
      path: "/replicas",
      name: "drain",
      firstVersion: { data: payload },
    });
    const secretId = created.secret?.id ?? "";

    type Result = { ok: true } | { ok: false; code: Code; message: string; lane: string };
    const results: Result[] = [];
    let running = true;
    // Each lane keeps one call in flight against the second server, back to
    // back, until the server is gone. HTTP/2 only: a request written on an
    // HTTP/1.1 keep-alive connection while the server closes it is the
    // well-known keep-alive race, an ECONNRESET that says nothing about
    // draining.
    const lane = async (client: CofferClient, name: string) => {
      while (running) {
        try {
          const res = await client.accessSecretVersion({ secretId, revision: "1" });
          if (!Buffer.from(res.data).equals(payload)) throw new Error("wrong payload");
          results.push({ ok: true });
        } catch (e) {
          const err = ConnectError.from(e);
          results.push({ ok: false, code: err.code, message: err.message, lane: name });
          if (err.code === Code.Unavailable) return;
        }
      }
    };
    const lanes = Array.from({ length: 32 }, (_, i) =>
      i % 2 ? lane(b.grpc, "grpc") : lane(b.connectH2, "connect"),
    );

    // Let traffic flow, then stop the server in the middle of it.
    const deadline = Date.now() + 30_000;
    while (results.length < 100 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(results.filter((r) => r.ok).length).toBeGreaterThanOrEqual(100);
    // Hold the lanes' calls in flight when the signal comes: every access
    // writes its audit row, and a lock on the audit table makes those writes
    // wait. (Without it, batched accesses can all be answered in the instant
    // the signal arrives, leaving nothing to drain.)
    const holder = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = holder.begin(async (tx) => {
      await tx.unsafe("lock table audit_events in exclusive mode");
      await released;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    second.signal("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await held;
    await holder.end();
    const exit = await second.exited;
    running = false;
    await Promise.all(lanes);

    expect(exit).toEqual({ code: 0, signal: null });
    // Every call either completed with the payload or was turned away as
    // UNAVAILABLE, which a client may retry elsewhere.
    const failures = results.flatMap((r) => (r.ok ? [] : [r]));
    expect(
      failures
        .filter((f) => f.code !== Code.Unavailable)
        .map((f) => `${f.lane}: ${Code[f.code]}: ${f.message}`),
    ).toEqual([]);

    // The server finished calls after it began to shut down: those were in
    // flight when the signal came.
    const logs = second.logs();
    const shutdownAt = logs.findIndex((l) => l.msg === "shutting down: draining calls");
    expect(shutdownAt).toBeGreaterThan(0);
    const drained = logs
      .slice(shutdownAt)
      .filter(
        (l) =>
          l.msg === "call" && l.code === "OK" && String(l.method).endsWith("/AccessSecretVersion"),
      );
    expect(drained.length).toBeGreaterThan(0);
    expect(logs.at(-1)?.msg).toBe("stopped");

    // The other replica still serves.
    const still = await a.connectH2.accessSecretVersion({ secretId, revision: "1" });
    expect(Buffer.from(still.data).equals(payload)).toBe(true);
  });
});
