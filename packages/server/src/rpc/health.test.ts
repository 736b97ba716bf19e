import { AdminService, AuthService, SecretService } from "@coffer/api";
import { Health, HealthCheckResponse_ServingStatus as S } from "@coffer/api/grpc/health/v1";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.ts";
import { memoryDatabase } from "../testing/backends.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";
import { runUnless } from "../testing/skip.ts";

const protoDir = new URL("../../../../proto", import.meta.url).pathname;
const protocols = ["grpc", "connect", "grpc-web"] as const;
type Protocol = (typeof protocols)[number];
const pglite = serverBackends.find((b) => b.name === "pglite");
const onPostgres = serverBackends.find((b) => b.name === "postgres");
if (pglite === undefined) throw new Error("no PGlite backend");

/** A Health client without any token: gRPC to the grpc-js port, Connect and gRPC-Web to the HTTP port. */
function healthClient(server: RunningServer, protocol: Protocol): Client<typeof Health> {
  const http1 = { baseUrl: `http://127.0.0.1:${server.httpPort}`, httpVersion: "1.1" as const };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.grpcPort}` })
      : protocol === "connect"
        ? createConnectTransport(http1)
        : createGrpcWebTransport(http1);
  return createClient(Health, transport);
}

/** A Watch read in the background. */
class HealthWatch {
  readonly seen: S[] = [];
  error: ConnectError | undefined;
  readonly done: Promise<void>;
  private readonly abort = new AbortController();

  constructor(client: Client<typeof Health>, service: string) {
    this.done = (async () => {
      try {
        for await (const res of client.watch({ service }, { signal: this.abort.signal })) {
          this.seen.push(res.status);
        }
      } catch (err) {
        this.error = ConnectError.from(err);
      }
    })();
  }

  /** Waits until the statuses received so far are `expected`. */
  async until(expected: S[], timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (JSON.stringify(this.seen) !== JSON.stringify(expected)) {
      if (Date.now() > deadline) {
        throw new Error(
          `watch saw [${this.seen.map((s) => S[s]).join(", ")}], expected [${expected.map((s) => S[s]).join(", ")}]${this.error ? ` (ended: ${this.error.message})` : ""}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  cancel(): Promise<void> {
    this.abort.abort();
    return this.done;
  }
}

async function statuses(client: Client<typeof Health>, names: string[]): Promise<string[]> {
  return Promise.all(names.map(async (service) => S[(await client.check({ service })).status]));
}

const SECRETS = SecretService.typeName;
const ADMIN = AdminService.typeName;
const AUTH = AuthService.typeName;

let running: TestServer[] = [];
let watches: HealthWatch[] = [];
afterEach(async () => {
  await Promise.all(watches.map((w) => w.cancel()));
  watches = [];
  await Promise.all(running.map((s) => s.stop()));
  running = [];
});

async function start(
  backend: NonNullable<typeof pglite>,
  overrides: Parameters<NonNullable<typeof pglite>["start"]>[0] = {},
): Promise<RunningServer> {
  const s = await backend.start({ healthIntervalMs: 100, ...overrides });
  running.push(s);
  return s.server;
}

function watch(server: RunningServer, protocol: Protocol, service: string): HealthWatch {
  const w = new HealthWatch(healthClient(server, protocol), service);
  watches.push(w);
  return w;
}

/** A server start takes seconds on a loaded two-core machine (PGlite boots, migrations run). */
const SLOW = 120_000;

describe.each(serverBackends)("grpc.health.v1 on $name", (backend) => {
  let shared: TestServer;
  beforeAll(async () => {
    shared = await backend.start({ healthIntervalMs: 100 });
  }, SLOW);
  afterAll(() => shared?.stop());

  it("answers Check, List and Watch without a token, over gRPC, Connect and gRPC-Web", async () => {
    const server = shared.server;
    for (const protocol of protocols) {
      const client = healthClient(server, protocol);
      expect(await statuses(client, ["", SECRETS, ADMIN, AUTH, "coffer.region.local"])).toEqual([
        "SERVING",
        "SERVING",
        "SERVING",
        "SERVING",
        "SERVING",
      ]);
      const unknown = await client.check({ service: "no.such.Service" }).catch(ConnectError.from);
      expect(unknown).toBeInstanceOf(ConnectError);
      expect((unknown as ConnectError).code).toBe(Code.NotFound);
      expect((unknown as ConnectError).rawMessage).toContain('"coffer.region.local"');
      const list = await client.list({});
      expect(
        Object.fromEntries(Object.entries(list.statuses).map(([k, v]) => [k, S[v.status]])),
      ).toEqual({
        "": "SERVING",
        [SECRETS]: "SERVING",
        [ADMIN]: "SERVING",
        [AUTH]: "SERVING",
        "coffer.region.local": "SERVING",
      });
      const w = watch(server, protocol, "");
      await w.until([S.SERVING]);
      const unknownWatch = watch(server, protocol, "no.such.Service");
      await unknownWatch.until([S.SERVICE_UNKNOWN]);
      expect(unknownWatch.error).toBeUndefined();
    }
  });

  it("reads SERVING from the gRPC port with grpc-js's own client built from proto/grpc/health/v1 (as grpc_health_probe)", async () => {
    const server = shared.server;
    const definition = protoLoader.loadSync("grpc/health/v1/health.proto", {
      includeDirs: [protoDir],
      enums: String,
    });
    const { Health: HealthClient } = (
      grpc.loadPackageDefinition(definition) as unknown as {
        grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
      }
    ).grpc.health.v1;
    const client = new HealthClient(
      `127.0.0.1:${server.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Check(
        req: { service: string },
        options: grpc.CallOptions,
        callback: (err: grpc.ServiceError | null, res?: { status: string }) => void,
      ): void;
    };
    try {
      const check = (service: string) =>
        new Promise<{ status: string }>((resolve, reject) =>
          client.Check({ service }, { deadline: Date.now() + 5_000 }, (err, res) =>
            err ? reject(err) : resolve(res ?? { status: "none" }),
          ),
        );
      expect(await check("")).toEqual({ status: "SERVING" });
      expect(await check("coffer.region.local")).toEqual({ status: "SERVING" });
      await expect(check("nope")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    } finally {
      client.close();
    }
  });
});

describe("a region's database stops answering", () => {
  it(
    "PGlite: a closed region's database makes it, the services and the server NOT_SERVING, others stay SERVING",
    async () => {
      const server = await start(pglite, {
        regions: ["local", "eu"],
        databases: { local: memoryDatabase(), eu: memoryDatabase() },
      });
      const overall = protocols.map((p) => watch(server, p, ""));
      const euWatch = watch(server, "grpc", "coffer.region.eu");
      const localWatch = watch(server, "connect", "coffer.region.local");
      await Promise.all([...overall, euWatch, localWatch].map((w) => w.until([S.SERVING])));

      const eu = server.domain.regions.all().find((r) => r.name === "eu")?.database;
      if (eu === undefined) throw new Error("no eu region");
      await eu.close();
      // The server closes its databases again when it stops; PGlite refuses a second close.
      eu.close = async () => {};

      await Promise.all([...overall, euWatch].map((w) => w.until([S.SERVING, S.NOT_SERVING])));
      for (const protocol of protocols) {
        expect(
          await statuses(healthClient(server, protocol), [
            "",
            SECRETS,
            ADMIN,
            "coffer.region.eu",
            "coffer.region.local",
          ]),
        ).toEqual(["NOT_SERVING", "NOT_SERVING", "NOT_SERVING", "NOT_SERVING", "SERVING"]);
      }
      expect(localWatch.seen).toEqual([S.SERVING]);
    },
    SLOW,
  );

  it("Postgres: NOT_SERVING while the database refuses connections, SERVING again once it accepts them", {
    ...runUnless(onPostgres ? undefined : "needs TEST_DATABASE_URL (Postgres)"),
    timeout: SLOW,
  }, async () => {
    if (onPostgres === undefined || process.env.TEST_DATABASE_URL === undefined) return;
    const server = await start(onPostgres);
    const rows = (await server.domain.regions
      .resolve("")
      .db.execute(sql`select current_database() as name`)) as unknown as { name: string }[];
    const name = rows[0]?.name ?? "";
    if (!/^coffer_test_[0-9a-f]+$/.test(name)) throw new Error(`unexpected database ${name}`);
    const overall = protocols.map((p) => watch(server, p, ""));
    const region = watch(server, "grpc", "coffer.region.local");
    await Promise.all([...overall, region].map((w) => w.until([S.SERVING])));

    const admin = postgres(process.env.TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`alter database ${name} allow_connections false`);
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name}`;
      await Promise.all([...overall, region].map((w) => w.until([S.SERVING, S.NOT_SERVING])));
      expect(await statuses(healthClient(server, "connect"), ["", SECRETS])).toEqual([
        "NOT_SERVING",
        "NOT_SERVING",
      ]);

      await admin.unsafe(`alter database ${name} allow_connections true`);
      await Promise.all(
        [...overall, region].map((w) => w.until([S.SERVING, S.NOT_SERVING, S.SERVING])),
      );
      expect(await statuses(healthClient(server, "grpc"), ["", "coffer.region.local"])).toEqual([
        "SERVING",
        "SERVING",
      ]);
    } finally {
      await admin.unsafe(`alter database ${name} allow_connections true`).catch(() => {});
      await admin.end();
    }
  });
});

describe("graceful shutdown", () => {
  it(
    "sends NOT_SERVING to every health watch, then ends it with UNAVAILABLE, without holding the drain",
    async () => {
      const server = await start(pglite, { shutdownGraceMs: 10_000 });
      const ws = protocols.map((p) => watch(server, p, ""));
      await Promise.all(ws.map((w) => w.until([S.SERVING])));
      const begun = performance.now();
      await server.stop();
      // Well inside the grace period: no health watch kept the servers open.
      expect(performance.now() - begun).toBeLessThan(5_000);
      for (const w of ws) {
        await w.done;
        expect(w.seen).toEqual([S.SERVING, S.NOT_SERVING]);
        expect(w.error?.code).toBe(Code.Unavailable);
      }
    },
    SLOW,
  );
});
