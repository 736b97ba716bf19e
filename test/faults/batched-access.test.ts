import { randomUUID } from "node:crypto";
import { createCofferTransport, EphemeralAction, SecretService } from "@coffer/client";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { type FreshDatabase, freshDatabase, postgresMissing } from "./support/postgres.ts";
import { failureOf, tally, until } from "./support/wait.ts";

/**
 * Group commit (issue 16) under faults, on Postgres: accesses served in
 * batches by two replicas of one database still give a single-access
 * version to exactly one caller, and a kill -9 in the middle of batched
 * reads loses no audit event of a call that was answered.
 */

const secrets = (s: ServerProcess) =>
  createClient(
    SecretService,
    createCofferTransport({ url: s.grpcUrl, protocol: "grpc", token: s.token, timeoutMs: 20_000 }),
  );

/** Accesses served and batches that served them, from the server's /metrics. */
async function batching(s: ServerProcess): Promise<{ calls: number; batches: number }> {
  const line = s.output.find((l) => l.stream === "stdout" && l.text.includes("coffer is serving"));
  const { metrics } = JSON.parse(line?.text ?? "{}") as { metrics?: string };
  const text = await (await fetch(`http://${metrics}`)).text();
  const value = (name: string) =>
    Number(new RegExp(`^${name}\\{region="local"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return {
    calls: value("coffer_access_batch_size_sum"),
    batches: value("coffer_access_batch_size_count"),
  };
}

describe("batched accesses on Postgres", runUnless(postgresMissing), () => {
  const servers: ServerProcess[] = [];
  let db: FreshDatabase | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.kill();
      await s.exited;
    }
    await db?.drop();
    db = undefined;
    await removeTempDir(dir);
    dir = undefined;
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function start(env: Record<string, string>): Promise<ServerProcess> {
    const server = await startServer({ env });
    servers.push(server);
    return server;
  }

  it("gives each single-access version to exactly one of 200 racers on two replicas", async () => {
    dir = await makeTempDir("faults-race");
    db = await freshDatabase("race");
    const env = {
      ...db.env,
      COFFER_BOOTSTRAP_TOKEN: newToken(),
      COFFER_DATA_DIR: dir,
      COFFER_METRICS_LISTEN: "127.0.0.1:0",
    };
    const [a, b] = [await start(env), await start(env)] as [ServerProcess, ServerProcess];
    const projectId = await a.createProject();
    const clients = [secrets(a), secrets(b)] as const;
    const { secret } = await clients[0].createSecret({
      projectId,
      name: "race",
      ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
    });
    const secretId = secret?.id ?? "";
    for (let round = 0; round < 5; round++) {
      const payload = `round-${round}-${randomUUID()}`;
      const { version } = await clients[0].createSecretVersion({
        secretId,
        data: Buffer.from(payload),
      });
      const revision = String(version?.revision);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 200 }, (_, i) =>
          clients[i % 2 === 0 ? 0 : 1].accessSecretVersion({ secretId, revision }),
        ),
      );
      const served = outcomes.flatMap((o) =>
        o.status === "fulfilled" ? [Buffer.from(o.value.data).toString()] : [],
      );
      expect(served, `round ${round}`).toEqual([payload]);
      const refused = outcomes.flatMap((o) =>
        o.status === "rejected" ? [ConnectError.from(o.reason)] : [],
      );
      expect(tally(refused.map((e) => Code[e.code]))).toEqual({ FailedPrecondition: 199 });
      for (const e of refused) expect(e.rawMessage).toContain("was already accessed");
    }
    // The racers were served in batches, on both replicas.
    for (const s of [a, b]) {
      const { calls, batches } = await batching(s);
      expect(calls).toBe(500);
      expect(batches).toBeLessThan(calls / 2);
    }
  }, 180_000);

  it("keeps the audit event of every answered access across a kill -9 under batched load", async () => {
    dir = await makeTempDir("faults-kill-access");
    db = await freshDatabase("killaccess");
    const env = {
      ...db.env,
      COFFER_BOOTSTRAP_TOKEN: newToken(),
      COFFER_DATA_DIR: dir,
      COFFER_METRICS_LISTEN: "127.0.0.1:0",
    };
    const first = await start(env);
    const client = secrets(first);
    const projectId = await first.createProject();
    const ids: string[] = [];
    for (let s = 0; s < 8; s++) {
      const { secret } = await client.createSecret({
        projectId,
        name: `s${s}`,
        firstVersion: { data: Buffer.from(`payload ${s}`) },
      });
      ids.push(secret?.id ?? "");
    }
    const answered: string[] = [];
    const failures: string[] = [];
    const reader = async (r: number) => {
      for (let i = 0; ; i++) {
        const requestId = `kill-${r}-${i}`;
        try {
          await client.accessSecretVersion(
            { secretId: ids[(r + i) % ids.length] ?? "", revision: "latest" },
            { headers: { "x-request-id": requestId } },
          );
        } catch (err) {
          failures.push(failureOf(err));
          return;
        }
        answered.push(requestId);
      }
    };
    const readers = Array.from({ length: 64 }, (_, r) => reader(r));
    await until("2,000 accesses are answered", () => answered.length >= 2_000, 60_000);
    // The load is batched: far fewer statements than calls.
    const { calls, batches } = await batching(first);
    expect(batches).toBeLessThan(calls / 2);
    first.kill();
    const exit = await first.exited;
    await Promise.all(readers);
    expect(exit.signal).toBe("SIGKILL");
    expect(Object.keys(tally(failures)).filter((c) => c !== "connection lost")).toEqual([]);

    // Restarted on the same database (the server also proves it still opens it).
    const second = await start(env);
    const read = await secrets(second).accessSecretVersion({
      secretId: ids[0] ?? "",
      revision: "1",
    });
    expect(Buffer.from(read.data).toString()).toBe("payload 0");
    const sql = postgres(db.env.COFFER_DATABASE_URL ?? "", { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ request_id: string }[]>`
        select request_id from audit_events
        where outcome = 'OK' and method like '%/AccessSecretVersion' and request_id like 'kill-%'`;
      const audited = new Set(rows.map((r) => r.request_id));
      const missing = answered.filter((id) => !audited.has(id));
      expect(missing).toEqual([]);
    } finally {
      await sql.end();
    }
  }, 180_000);
});
