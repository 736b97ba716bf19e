import { randomUUID } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { Code } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toConnectError } from "../rpc/errors.ts";
import { backends, dropPostgresDatabase, testDomain } from "../testing/backends.ts";
import { addVersion, newSecret, query } from "../testing/domain-helpers.ts";
import { runUnless } from "../testing/skip.ts";
import { type Database, openDatabase } from "./client.ts";
import { writeVersionBatch } from "./versions-batch.ts";

/**
 * writeVersionBatch pipelines its statements on a reserved Postgres
 * connection (BEGIN with the lock, the insert with COMMIT). When the
 * connection is lost with them in flight, every one of them fails: the
 * batch must reject with the driver's error and leave none of them
 * unhandled, which would end the server (seen in CI, Postgres stopped under
 * load: test/faults/postgres-restart.test.ts).
 */

const freshUrl = backends.find((b) => b.freshUrl !== undefined)?.freshUrl;

/**
 * A TCP proxy in front of Postgres that, once cut() is called, closes both
 * sides as soon as the client sends anything (or anything `when` matches),
 * forwarding none of it; restore() lets new connections through again.
 */
async function cuttingProxy(target: URL): Promise<{
  url: string;
  cut(when?: (chunk: Buffer) => boolean): void;
  restore(): void;
  close(): void;
}> {
  let cutting: ((chunk: Buffer) => boolean) | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.on("data", (chunk: Buffer) => {
      if (cutting === undefined || !cutting(chunk)) {
        upstream.write(chunk);
        return;
      }
      client.destroy();
      upstream.destroy();
    });
    upstream.on("data", (chunk) => client.write(chunk));
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(address.port);
  return {
    url: url.toString(),
    cut: (when = () => true) => {
      cutting = when;
    },
    restore: () => {
      cutting = undefined;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const needsPostgres = runUnless(
  freshUrl === undefined ? "needs Postgres (TEST_DATABASE_URL)" : undefined,
);

/**
 * A fresh database behind a cutting proxy, opened with a pool of one
 * connection, for one describe block: made in beforeAll, gone in afterAll.
 */
function proxiedDatabase() {
  const fixture = {} as {
    url: string;
    proxy: Awaited<ReturnType<typeof cuttingProxy>>;
    database: Database;
  };
  beforeAll(async () => {
    fixture.url = await (freshUrl as () => Promise<string>)();
    fixture.proxy = await cuttingProxy(new URL(fixture.url));
    fixture.database = await openDatabase({
      driver: "postgres",
      url: fixture.proxy.url,
      poolSize: 1,
    });
  });
  afterAll(async () => {
    await fixture.database?.close();
    fixture.proxy?.close();
    if (fixture.url !== undefined) await dropPostgresDatabase(fixture.url);
  });
  return fixture;
}

describe(
  "writeVersionBatch when its connection is lost with statements in flight",
  needsPostgres,
  () => {
    const fixture = proxiedDatabase();

    it("rejects with the driver's error and leaves no statement's rejection unhandled", async () => {
      const { database, proxy } = fixture;
      // The pool's one connection is open and idle: the batch reserves it.
      await database.db.execute(sql`select 1`);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on("unhandledRejection", onUnhandled);
      try {
        proxy.cut();
        await expect(
          writeVersionBatch(database.db, [randomUUID()], () => []),
        ).rejects.toMatchObject({
          code: "CONNECTION_CLOSED",
        });
        // Unhandled rejections are reported after the microtask queue drains.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(unhandled).toEqual([]);
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
    });
  },
);

describe("a create whose batch loses its connection", needsPostgres, () => {
  const fixture = proxiedDatabase();

  it("is answered UNAVAILABLE, writes nothing, and the next create succeeds once Postgres is back", async () => {
    const { database, proxy } = fixture;
    const domain = testDomain({ "test-region": database });
    const { secret } = await newSecret(domain, {}, "v1");
    // Cut at the batch's BEGIN (sent with its lock): what a Postgres restart under
    // create load does (test/faults/postgres-restart.test.ts), at a chosen moment.
    proxy.cut((chunk) => chunk.includes("begin"));
    const lost = await addVersion(domain, secret.id, "lost").then(
      () => undefined,
      (err: unknown) => err,
    );
    const internal: unknown[] = [];
    const answer = toConnectError(lost, "req-lost", (cause) => internal.push(cause));
    expect(answer.code).toBe(Code.Unavailable);
    expect(internal).toEqual([]);
    proxy.restore();
    const next = await addVersion(domain, secret.id, "after");
    // Revisions stay contiguous: the lost create wrote no row.
    expect(next.revision).toBe(2);
    const rows = await query<{ revision: number }>(
      database.db,
      sql`select revision from secret_versions where secret_id = ${secret.id} order by revision`,
    );
    expect(rows.map((r) => Number(r.revision))).toEqual([1, 2]);
  });
});
