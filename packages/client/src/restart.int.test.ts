import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { RunningServer } from "@coffer/server";
import {
  dropPostgresDatabase,
  postgresBackend,
  startTestServer,
  sweepNow,
  testConfig,
} from "@coffer/server/testing";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  AdminService,
  createCoffer,
  createCofferTransport,
  type WatchEvent,
  WatchEventKind,
} from "./index.ts";
import { until } from "./test-server.ts";

const K = WatchEventKind;
type Database = ReturnType<typeof testConfig>["databases"][string];

const freshPostgresUrl = postgresBackend?.freshUrl;

/** Databases that outlive a server: a PGlite folder, or a fresh Postgres database. */
const persistent: {
  name: string;
  open(): Promise<{ database: Database; drop(): Promise<void> }>;
}[] = [
  {
    name: "pglite",
    async open() {
      const dataDir = mkdtempSync(path.join(tmpdir(), "coffer-client-"));
      return {
        database: { driver: "pglite", dataDir },
        drop: async () => rmSync(dataDir, { recursive: true, force: true }),
      };
    },
  },
  ...(freshPostgresUrl
    ? [
        {
          name: "postgres",
          async open() {
            const url = await freshPostgresUrl();
            return {
              database: { driver: "postgres" as const, url, poolSize: 5 },
              drop: () => dropPostgresDatabase(url),
            };
          },
        },
      ]
    : []),
];

const utf8 = (s: string) => new TextEncoder().encode(s);

/** The error a call fails with; a call that succeeds fails the test. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe.each(persistent)("through a server restart on $name", (backend) => {
  it("a watch resumes from its cursor, reads ride out the outage, writes are not retried, and a stale cursor gets RESYNC", {
    timeout: 240_000,
  }, async () => {
    const { database, drop } = await backend.open();
    // The same keys, token and database on both starts; the second on the same ports.
    const base = testConfig();
    const fixed = {
      masterKeys: base.masterKeys,
      bootstrapToken: base.bootstrapToken,
      databases: { local: database },
    };
    const token = base.bootstrapToken as string;
    let server: RunningServer | undefined;
    const abort = new AbortController();
    let watching: Promise<void> = Promise.resolve();
    try {
      server = await startTestServer(fixed);
      const { grpcPort, httpPort } = server;
      const url = `http://127.0.0.1:${httpPort}`;
      const admin = createClient(AdminService, createCofferTransport({ url, token }));
      const projectId = (await admin.createProject({ name: "restart" })).project?.id ?? "";
      // Enough retries to outlast a restart on a busy machine.
      const coffer = createCoffer({
        url,
        token,
        projectId,
        retry: { maxAttempts: 300, initialDelayMs: 50, maxDelayMs: 500 },
      });

      const events: WatchEvent[] = [];
      const reconnects: (Code | undefined)[] = [];
      const watch = coffer.watch({
        selectors: [{ path: "/svc", name: "app" }],
        signal: abort.signal,
        backoff: { initialDelayMs: 50, maxDelayMs: 300 },
        onReconnect: (r) => reconnects.push(r.error?.code),
      });
      watching = (async () => {
        for await (const event of watch) events.push(event);
      })();
      const seen = () => events.map((e) => `${K[e.kind]} #${e.revision}`);
      await until(
        () => watch.cursor !== "",
        () => "no first heartbeat",
      );

      const { secret } = await coffer.rpc.createSecret({
        projectId,
        path: "/svc",
        name: "app",
        firstVersion: { data: utf8("1") },
      });
      const secretId = secret?.id ?? "";
      await until(
        () => events.length === 2,
        () => seen().join(", "),
      );

      await server.stop();
      server = undefined;
      // While the server is away: reads wait for it, a write fails at once.
      const read = coffer.access("/svc/app");
      const get = coffer.rpc.getSecret({ secretId });
      const write = await failure(coffer.rpc.createSecretVersion({ secretId, data: utf8("x") }));
      expect(write.code).toBe(Code.Unavailable);
      await until(
        () => reconnects.length > 0,
        () => "no reconnection",
      );

      server = await startTestServer({
        ...fixed,
        grpcListen: { host: "127.0.0.1", port: grpcPort },
        httpListen: { host: "127.0.0.1", port: httpPort },
      });
      expect((await read).text()).toBe("1");
      expect((await get).secret?.versionCount).toBe(1);

      await coffer.rpc.createSecretVersion({ secretId, data: utf8("2") });
      await until(
        () => events.length === 3,
        () => seen().join(", "),
      );
      expect(seen()).toEqual(["SECRET_CREATED #0", "VERSION_CREATED #1", "VERSION_CREATED #2"]);
      // The server ended the stream with UNAVAILABLE as it stopped.
      expect(reconnects[0]).toBe(Code.Unavailable);

      // A watcher away longer than the retention: its cursor is pruned.
      abort.abort();
      await watching;
      const cursor = watch.cursor;
      await coffer.rpc.createSecretVersion({ secretId, data: utf8("3") });
      await sweepNow(server, 0);

      const again = new AbortController();
      const later: WatchEvent[] = [];
      const resumed = coffer.watch({ since: cursor, signal: again.signal });
      const following = (async () => {
        for await (const event of resumed) {
          later.push(event);
          if (event.kind === K.RESYNC) {
            await coffer.rpc.createSecretVersion({ secretId, data: utf8("4") });
          }
          if (later.length === 2) again.abort();
        }
      })();
      await following;
      expect(later.map((e) => `${K[e.kind]} #${e.revision}`)).toEqual([
        "RESYNC #0",
        "VERSION_CREATED #4",
      ]);
    } finally {
      abort.abort();
      await watching;
      await server?.stop();
      await drop();
    }
  });
});
