import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  VersionStatus,
  WatchEventKind,
  type WatchSecretsRequestSchema,
  type WatchSecretsResponse,
} from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Config } from "../config.ts";
import { generateToken } from "../crypto/tokens.ts";
import { rowsOf } from "../db/raw-sql.ts";
import { finalHead, ORIGIN } from "../db/watch-events.ts";
import type { Role } from "../domain/caller.ts";
import { sweepRegion } from "../domain/sweeper.ts";
import { type RunningServer, startServer } from "../server.ts";
import {
  createTestToken,
  dropPostgresDatabase,
  ensureProjects,
  OTHER_PROJECT,
  PROJECT,
  postgresBackend,
  silentLogger,
  testConfig,
} from "../testing/backends.ts";
import { adminClient, type Protocol, type SecretClient, secretClient } from "../testing/clients.ts";
import { bytesIn, serverBackends, type TestServer } from "../testing/rpc-servers.ts";
import { runUnless } from "../testing/skip.ts";
import { formatCursor } from "./cursor.ts";

const text = (s: string) => new TextEncoder().encode(s);
const K = WatchEventKind;
type Request = MessageInitShape<typeof WatchSecretsRequestSchema>;

/** A watch stream read in the background, with helpers to wait for what it received. */
class Watch {
  readonly received: WatchSecretsResponse[] = [];
  readonly done: Promise<ConnectError | undefined>;
  private readonly abort = new AbortController();
  private waiters: (() => void)[] = [];

  constructor(client: SecretClient, request: Request) {
    this.done = (async () => {
      try {
        for await (const m of client.watchSecrets(
          { heartbeatInterval: durationFromMs(60_000), ...request },
          { signal: this.abort.signal },
        )) {
          this.received.push(m);
          for (const w of this.waiters.splice(0)) w();
        }
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      } finally {
        for (const w of this.waiters.splice(0)) w();
      }
    })();
  }

  /** Events other than heartbeats. */
  get events(): WatchSecretsResponse[] {
    return this.received.filter((m) => m.kind !== K.HEARTBEAT);
  }

  async until(predicate: (w: Watch) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (Date.now() > deadline) {
        throw new Error(`watch: condition not met; received ${JSON.stringify(this.summary())}`);
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  summary(): string[] {
    return this.received.map((m) => `${K[m.kind]} ${m.name}#${m.revision}`);
  }

  stop(): Promise<ConnectError | undefined> {
    this.abort.abort();
    return this.done;
  }
}

const kinds = (w: Watch) => w.events.map((m) => `${K[m.kind]} ${m.name}#${m.revision}`);

describe.each(serverBackends)("WatchSecrets on $name", (backend) => {
  let test: TestServer;
  const protocols: Protocol[] = ["grpc", "connect", "grpc-web"];
  let client: (p?: Protocol) => SecretClient;

  beforeAll(async () => {
    test = await backend.start();
    client = (p = "connect") => test.client(p, test.adminToken);
  });
  afterAll(() => test?.stop());

  const create = async (name: string, path = "/watch", data = "v1") =>
    (
      await client().createSecret({
        projectId: PROJECT,
        name,
        path,
        firstVersion: { data: text(data) },
      })
    ).secret?.id as string;

  it.each(protocols)(
    "starts with a heartbeat, then streams each change in order (%s)",
    async (p) => {
      const name = `order-${p}`;
      const w = new Watch(client(p), {
        projectId: PROJECT,
        selectors: [{ selector: { case: "location", value: { path: "/watch", name } } }],
      });
      await w.until((x) => x.received.length > 0);
      expect(w.received[0]?.kind).toBe(K.HEARTBEAT);
      expect(w.received[0]?.cursor).not.toBe("");

      const id = await create(name);
      const c = client();
      await c.createSecretVersion({ secretId: id, data: text("v2") });
      await c.disableSecretVersion({ secretId: id, revision: "2" });
      await c.enableSecretVersion({ secretId: id, revision: "2" });
      await c.deleteSecretVersion({ secretId: id, revision: "1" });
      await c.restoreSecretVersion({ secretId: id, revision: "1" });
      await c.updateSecret({ secretId: id, description: "changed" });
      await c.deleteSecret({ secretId: id });
      await c.restoreSecret({ secretId: id });
      await w.until((x) => x.events.length >= 10);
      expect(kinds(w)).toEqual([
        `SECRET_CREATED ${name}#0`,
        `VERSION_CREATED ${name}#1`,
        `VERSION_CREATED ${name}#2`,
        `VERSION_DISABLED ${name}#2`,
        `VERSION_ENABLED ${name}#2`,
        `VERSION_DELETED ${name}#1`,
        `VERSION_RESTORED ${name}#1`,
        `SECRET_UPDATED ${name}#0`,
        `SECRET_DELETED ${name}#0`,
        `SECRET_RESTORED ${name}#0`,
      ]);
      const created = w.events[1];
      expect(created).toMatchObject({
        secretId: id,
        projectId: PROJECT,
        path: "/watch",
        name,
        versionStatus: VersionStatus.ENABLED,
        singleAccess: false,
      });
      // Cursors strictly increase and events never carry payloads.
      const cursors = w.received.map((m) => m.cursor);
      expect(new Set(cursors.slice(1)).size).toBe(cursors.length - 1);
      expect(bytesIn(w.received)).toEqual([]);
      expect((await w.stop())?.code).toBe(Code.Canceled);
    },
  );
  it("resumes after a cursor with exactly the events it missed", async () => {
    const first = new Watch(client(), { projectId: PROJECT, selectors: [prefix("/resume")] });
    await first.until((x) => x.received.length > 0);
    const id = await create("r", "/resume");
    await first.until((x) => x.events.length === 2);
    const cursor = first.events[1]?.cursor as string;
    await first.stop();
    for (let i = 2; i <= 6; i++) {
      await client().createSecretVersion({ secretId: id, data: text(`v${i}`) });
    }
    const resumed = new Watch(client("grpc"), {
      projectId: PROJECT,
      selectors: [prefix("/resume")],
      sinceCursor: cursor,
    });
    await resumed.until((x) => x.events.length >= 5);
    expect(resumed.received[0]).toMatchObject({ kind: K.HEARTBEAT, cursor });
    expect(kinds(resumed)).toEqual([2, 3, 4, 5, 6].map((r) => `VERSION_CREATED r#${r}`));
    await client().disableSecretVersion({ secretId: id, revision: "6" });
    await resumed.until((x) => x.events.length === 6);
    expect(kinds(resumed).at(-1)).toBe("VERSION_DISABLED r#6");
    await resumed.stop();
  });

  it("follows only what its selectors name", async () => {
    const byId = await create("by-id", "/sel");
    const w = new Watch(client(), {
      projectId: PROJECT,
      selectors: [
        { selector: { case: "secretId", value: byId } },
        { selector: { case: "location", value: { path: "/sel", name: "by-location" } } },
        prefix("/sel/deep"),
      ],
    });
    // A stream that matches nothing hears nothing but its first heartbeat
    // (its next one is a minute away), however busy the project is.
    const idle = new Watch(client(), { projectId: PROJECT, selectors: [prefix("/nothing-here")] });
    await idle.until((x) => x.received.length > 0);
    await w.until((x) => x.received.length > 0);
    await client().createSecretVersion({ secretId: byId, data: text("x") });
    await create("by-location", "/sel");
    await create("other", "/sel");
    await create("inside", "/sel/deep/er");
    await create("sibling", "/sel/deeper");
    await client().createSecretVersion({ secretId: byId, data: text("y") });
    // by-id was created before the stream started; a stream started
    // without a cursor may still report that (see the test below).
    const early = ["SECRET_CREATED by-id#0", "VERSION_CREATED by-id#1"];
    const late = (x: Watch) => kinds(x).filter((k) => !early.includes(k));
    await w.until((x) => late(x).length >= 6);
    expect(late(w)).toEqual([
      "VERSION_CREATED by-id#2",
      "SECRET_CREATED by-location#0",
      "VERSION_CREATED by-location#1",
      "SECRET_CREATED inside#0",
      "VERSION_CREATED inside#1",
      "VERSION_CREATED by-id#3",
    ]);
    expect(idle.received).toHaveLength(1);
    await idle.stop();
    await w.stop();
  });

  it("shows a token only what it may read or access, and refuses the rest", async () => {
    const scoped = async (role: Role, pathPrefix: string, projectId = PROJECT) =>
      (await createTestToken(test.server.domain, [{ projectId, role, pathPrefix }])).value;
    const reader = test.client("connect", await scoped("read_only", "/team-a"));
    const sidecar = test.client("grpc", await scoped("secret_access", "/team-a/app"));
    const r = new Watch(reader, { projectId: PROJECT });
    const s = new Watch(sidecar, { projectId: PROJECT });
    await r.until((x) => x.received.length > 0);
    await s.until((x) => x.received.length > 0);
    const moved = await create("app-db", "/team-a/app");
    await create("b-db", "/team-b");
    await create("a-db", "/team-a");
    await client().updateSecret({ secretId: moved, path: "/team-b" });
    await r.until((x) => x.events.length >= 5);
    await s.until((x) => x.events.length >= 3);
    expect(kinds(r)).toEqual([
      "SECRET_CREATED app-db#0",
      "VERSION_CREATED app-db#1",
      "SECRET_CREATED a-db#0",
      "VERSION_CREATED a-db#1",
      // Moved out of reach: it looks deleted, and its new place stays hidden.
      "SECRET_DELETED app-db#0",
    ]);
    expect(r.events.at(-1)?.path).toBe("/team-a/app");
    expect(r.events.at(-1)?.previousLocation).toBeUndefined();
    expect(kinds(s)).toEqual([
      "SECRET_CREATED app-db#0",
      "VERSION_CREATED app-db#1",
      "SECRET_DELETED app-db#0",
    ]);
    await Promise.all([r.stop(), s.stop()]);

    const elsewhere = new Watch(reader, { projectId: OTHER_PROJECT });
    expect((await elsewhere.done)?.code).toBe(Code.NotFound);
    const tokenAdmin = test.client("connect", await scoped("admin", "/", OTHER_PROJECT));
    const adminOnly = new Watch(tokenAdmin, { projectId: OTHER_PROJECT });
    await adminOnly.until((x) => x.received.length > 0);
    await adminOnly.stop();
  });

  it("never shows a token a previous location it could not see", async () => {
    const { value } = await createTestToken(test.server.domain, [
      { projectId: PROJECT, role: "read_only", pathPrefix: "/prod" },
    ]);
    const prod = test.client("connect", value);
    const all = new Watch(prod, { projectId: PROJECT });
    // A location selector must not probe where a hidden secret used to be.
    const probe = new Watch(prod, {
      projectId: PROJECT,
      selectors: [
        { selector: { case: "location", value: { path: "/internal", name: "hidden-7" } } },
      ],
    });
    await all.until((x) => x.received.length > 0);
    await probe.until((x) => x.received.length > 0);
    const hidden = await create("hidden-7", "/internal");
    const inside = await create("inside-7", "/prod/a");
    await client().updateSecret({ secretId: hidden, path: "/prod" });
    await client().updateSecret({ secretId: inside, path: "/prod/b" });
    await all.until((x) => x.events.length >= 4);
    expect(kinds(all)).toEqual([
      "SECRET_CREATED inside-7#0",
      "VERSION_CREATED inside-7#1",
      "SECRET_UPDATED hidden-7#0",
      "SECRET_UPDATED inside-7#0",
    ]);
    const [, , movedIn, movedWithin] = all.events;
    expect(movedIn?.path).toBe("/prod");
    expect(movedIn?.previousLocation).toBeUndefined();
    // A move the token could see at both ends keeps its previous location.
    expect(movedWithin?.previousLocation).toMatchObject({ path: "/prod/a", name: "inside-7" });
    // The replay from the start says the same.
    const replay = new Watch(prod, { projectId: PROJECT, sinceCursor: all.received[0]?.cursor });
    await replay.until((x) => x.events.length >= 4);
    expect(replay.events.map((e) => e.previousLocation?.path)).toEqual(
      all.events.map((e) => e.previousLocation?.path),
    );
    expect(probe.events).toEqual([]);
    await Promise.all([all.stop(), probe.stop(), replay.stop()]);
  });

  it.each([
    [{ sinceCursor: "nonsense" }, "since_cursor"],
    [{ heartbeatInterval: durationFromMs(10) }, "heartbeat_interval"],
    [
      { selectors: [{ selector: { case: "pathPrefix", value: "no-slash" } }] },
      "selectors[0].path_prefix",
    ],
    [{ selectors: [{ selector: { case: "secretId", value: "x" } }] }, "selectors[0].secret_id"],
    [{ selectors: [{ selector: { case: undefined } }] }, "selectors[0]"],
    [{ projectId: "nope" }, "project_id"],
  ] as [Partial<Request>, string][])(
    "refuses a bad request naming the field (%#: %s)",
    async (bad, field) => {
      const w = new Watch(client(), { projectId: PROJECT, ...bad } as Request);
      const err = await w.done;
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.rawMessage.startsWith(`${field}:`)).toBe(true);
    },
  );

  it("answers RESYNC for a cursor older than the retained events, or from another database", async () => {
    const w = new Watch(client(), { projectId: PROJECT, selectors: [prefix("/old")] });
    await w.until((x) => x.received.length > 0);
    await create("old", "/old");
    await w.until((x) => x.events.length === 2);
    const old = w.events[0]?.cursor as string;
    await w.stop();
    const db = test.server.domain.regions.resolve("").db;
    // Retention 1 s: everything written more than a second ago goes.
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await sweepRegion(db, 86_400_000, 1_000)).watchEventsPruned).toBeGreaterThan(0);
    for (const sinceCursor of [old, `ffffffffffff${old.slice(12)}`]) {
      const again = new Watch(client(), { projectId: PROJECT, sinceCursor });
      await again.until((x) => x.received.length > 0);
      expect(again.received[0]?.kind).toBe(K.RESYNC);
      await again.stop();
    }
  });

  it("reports single-access consumption and expiry, and never a payload", async () => {
    const w = new Watch(client(), { projectId: PROJECT, selectors: [prefix("/ephemeral")] });
    await w.until((x) => x.received.length > 0);
    const { secret } = await client().createSecret({
      projectId: PROJECT,
      name: "once",
      path: "/ephemeral",
      ephemeralPolicy: { expiresOnceAccessed: true },
      firstVersion: { data: text("only-once") },
    });
    const id = secret?.id as string;
    const peek = await client().accessSecretVersion({
      secretId: id,
      revision: "latest_enabled",
      noConsume: true,
    });
    expect(peek).toMatchObject({ revision: 1, singleAccess: true, data: new Uint8Array() });
    const got = await client().accessSecretVersion({ secretId: id, revision: "1" });
    expect(got).toMatchObject({ singleAccess: true, data: text("only-once") });
    await w.until((x) => x.events.length >= 3);
    expect(kinds(w)).toEqual([
      "SECRET_CREATED once#0",
      "VERSION_CREATED once#1",
      "VERSION_CONSUMED once#1",
    ]);
    expect(w.events[1]?.singleAccess).toBe(true);
    expect(w.events[2]?.versionStatus).toBe(VersionStatus.DISABLED);

    await client().createSecret({
      projectId: PROJECT,
      name: "short",
      path: "/ephemeral",
      ephemeralPolicy: { timeToLive: durationFromMs(1_000) },
      firstVersion: { data: text("brief") },
    });
    await new Promise((r) => setTimeout(r, 1_100));
    await sweepRegion(test.server.domain.regions.resolve("").db, 86_400_000);
    test.server.domain.announce("local");
    await w.until((x) => x.events.length >= 6);
    expect(kinds(w).slice(3)).toEqual([
      "SECRET_CREATED short#0",
      "VERSION_CREATED short#1",
      "VERSION_EXPIRED short#1",
    ]);
    expect(bytesIn(w.received)).toEqual([]);
    await w.stop();
  });

  it("sends heartbeats while quiet", async () => {
    const w = new Watch(client("grpc"), {
      projectId: PROJECT,
      selectors: [prefix("/quiet")],
      heartbeatInterval: durationFromMs(1_000),
    });
    await w.until((x) => x.received.length >= 3, 5_000);
    expect(w.received.every((m) => m.kind === K.HEARTBEAT)).toBe(true);
    await w.stop();
  });

  it("misses nothing and repeats nothing under concurrent writers, live or resumed", async () => {
    const ids = await Promise.all([0, 1, 2, 3].map((i) => create(`busy-${i}`, "/busy")));
    const live = new Watch(client(), { projectId: PROJECT, selectors: [prefix("/busy")] });
    await live.until((x) => x.received.length > 0);
    const start = live.received[0]?.cursor as string;
    const perSecret = 40;
    await Promise.all(
      ids.map(async (secretId) => {
        for (let i = 0; i < perSecret; i++) {
          await client(i % 2 ? "grpc" : "connect").createSecretVersion({
            secretId,
            data: text(`${i}`),
          });
        }
      }),
    );
    // A stream started without a cursor starts at the newest *final*
    // position, so it may also report the creations that committed just
    // before it (while another transaction on the cluster was running):
    // count only the versions written after it started.
    const written = (w: Watch) =>
      w.events.filter((e) => e.kind === K.VERSION_CREATED && e.revision >= 2);
    const expected = ids.length * perSecret;
    await live.until((x) => written(x).length >= expected, 20_000);
    const replay = new Watch(client(), {
      projectId: PROJECT,
      selectors: [prefix("/busy")],
      sinceCursor: start,
    });
    await replay.until((x) => written(x).length >= expected, 20_000);
    for (const w of [live, replay]) {
      expect(written(w)).toHaveLength(expected);
      for (const id of ids) {
        const revisions = written(w)
          .filter((e) => e.secretId === id)
          .map((e) => e.revision);
        expect(revisions).toEqual(Array.from({ length: perSecret }, (_, i) => i + 2));
      }
    }
    // The replay from the first cursor is the live stream, event for event.
    expect(replay.events.map((e) => e.cursor)).toEqual(live.events.map((e) => e.cursor));
    await Promise.all([live.stop(), replay.stop()]);
  });
});

const prefix = (value: string) => ({ selector: { case: "pathPrefix" as const, value } });

describe.each(serverBackends)("WatchSecrets shutdown on $name", (backend) => {
  it("ends open streams with UNAVAILABLE when the server stops", async () => {
    const test = await backend.start();
    try {
      const g = new Watch(test.client("grpc", test.adminToken), { projectId: PROJECT });
      const c = new Watch(test.client("connect", test.adminToken), { projectId: PROJECT });
      await g.until((x) => x.received.length > 0);
      await c.until((x) => x.received.length > 0);
      await test.stop();
      expect((await g.done)?.code).toBe(Code.Unavailable);
      expect((await c.done)?.code).toBe(Code.Unavailable);
    } finally {
      await test.stop();
    }
  });
});

const freshPostgresUrl = postgresBackend?.freshUrl;

const onPostgres = runUnless(freshPostgresUrl ? undefined : "needs TEST_DATABASE_URL (Postgres)");

describe("WatchSecrets across replicas", onPostgres, () => {
  it("streams on one replica what was written through another, in commit order", async () => {
    if (freshPostgresUrl === undefined) throw new Error("unreachable: skipped without Postgres");
    const url = await freshPostgresUrl();
    const bootstrapToken = generateToken().value;
    const config = (): Partial<Config> => ({
      bootstrapToken,
      databases: { local: { driver: "postgres", url, poolSize: 5 } },
    });
    const a = await startServer(testConfig(config()), silentLogger);
    const b = await startServer(testConfig(config()), silentLogger);
    await ensureProjects(a.domain, PROJECT);
    try {
      const on = (s: RunningServer, protocol: Protocol) =>
        secretClient({
          url: `http://127.0.0.1:${protocol === "grpc" ? s.grpcPort : s.httpPort}`,
          protocol,
          token: bootstrapToken,
        });
      const w = new Watch(on(a, "grpc"), { projectId: PROJECT, selectors: [prefix("/replicas")] });
      await w.until((x) => x.received.length > 0);
      const writer = on(b, "connect");
      const { secret } = await writer.createSecret({
        projectId: PROJECT,
        name: "shared",
        path: "/replicas",
        firstVersion: { data: text("1") },
      });
      const id = secret?.id as string;
      for (let i = 2; i <= 20; i++)
        await writer.createSecretVersion({ secretId: id, data: text(`${i}`) });
      await w.until((x) => x.events.length >= 21);
      expect(w.events.map((e) => e.revision)).toEqual([
        0,
        ...Array.from({ length: 20 }, (_, i) => i + 1),
      ]);
      expect(a.feeds.streams).toBe(1);
      expect(b.feeds.streams).toBe(0);
      await w.stop();
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await dropPostgresDatabase(url);
    }
  });
});

/** Resolves with how a watch ended and when, or "still open" after `ms`. */
async function endOf(
  w: Watch,
  ms: number,
): Promise<{ code: Code | "OK" | "still open"; at: number }> {
  const end = await Promise.race([
    w.done,
    new Promise<"still open">((r) => setTimeout(() => r("still open"), ms)),
  ]);
  const at = performance.now();
  if (end === "still open") return { code: end, at };
  return { code: end === undefined ? "OK" : end.code, at };
}

describe.each(serverBackends)("WatchSecrets and the token's lifetime on $name", (backend) => {
  let test: TestServer;
  beforeAll(async () => {
    test = await backend.start({ watchStreamsPerToken: 2 });
  });
  afterAll(() => test?.stop());
  const reader = () =>
    createTestToken(test.server.domain, [
      { projectId: PROJECT, role: "read_only", pathPrefix: "/" },
    ]);

  it("ends a revoked token's streams as the revocation returns, with UNAUTHENTICATED", async () => {
    const { id, value } = await reader();
    // Heartbeats once a minute: nothing but the revocation can end these streams.
    const streams = [
      new Watch(test.client("grpc", value), { projectId: PROJECT }),
      new Watch(test.client("connect", value), { projectId: PROJECT }),
    ];
    for (const w of streams) await w.until((x) => x.received.length > 0);
    await test.adminClient("connect", test.adminToken).revokeToken({ tokenId: id });
    const revoked = performance.now();
    for (const w of streams) {
      const end = await endOf(w, 5_000);
      expect(end.code).toBe(Code.Unauthenticated);
      expect(end.at - revoked).toBeLessThan(100);
    }
    // And a new stream with it is refused.
    const again = new Watch(test.client("connect", value), { projectId: PROJECT });
    expect((await again.done)?.code).toBe(Code.Unauthenticated);
    expect(test.server.feeds.tokens.count(id)).toBe(0);
  });

  it("ends a stream when its token expires", async () => {
    const expiresAt = new Date(Date.now() + 1_500);
    const { value } = await createTestToken(
      test.server.domain,
      [{ projectId: PROJECT, role: "read_only", pathPrefix: "/" }],
      { expiresAt },
    );
    const w = new Watch(test.client("grpc", value), { projectId: PROJECT });
    await w.until((x) => x.received.length > 0);
    const end = await endOf(w, 5_000);
    expect(end.code).toBe(Code.Unauthenticated);
    const late = Date.now() - expiresAt.getTime();
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(600);
  });

  it("caps the open streams of one token (COFFER_WATCH_STREAMS_PER_TOKEN)", async () => {
    const { id, value } = await reader();
    const c = test.client("connect", value);
    const open = [
      new Watch(c, { projectId: PROJECT }),
      new Watch(test.client("grpc", value), { projectId: PROJECT }),
    ];
    for (const w of open) await w.until((x) => x.received.length > 0);
    const third = new Watch(c, { projectId: PROJECT });
    const refused = await Promise.race([
      third.done,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000)),
    ]);
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(refused?.rawMessage).toContain("already holds 2 open watch streams");
    expect(refused?.rawMessage).toContain("COFFER_WATCH_STREAMS_PER_TOKEN");
    // Another token is not affected; a closed stream frees its place.
    const other = new Watch(test.client("connect", (await reader()).value), { projectId: PROJECT });
    await other.until((x) => x.received.length > 0);
    await open[0]?.stop();
    // The server notices a cancelled stream at its feed's next tick.
    for (let i = 0; i < 100 && test.server.feeds.tokens.count(id) > 1; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(test.server.feeds.tokens.count(id)).toBe(1);
    const fourth = new Watch(c, { projectId: PROJECT });
    await fourth.until((x) => x.received.length > 0);
    await Promise.all([open[1]?.stop(), other.stop(), fourth.stop()]);
  });
});

describe.skipIf(freshPostgresUrl === undefined)(
  "WatchSecrets and revocation across replicas",
  () => {
    it("ends the stream on another replica within a second, and its cached token with it", async () => {
      if (freshPostgresUrl === undefined) throw new Error("unreachable: skipped without Postgres");
      const url = await freshPostgresUrl();
      const bootstrapToken = generateToken().value;
      const config = testConfig({
        bootstrapToken,
        databases: { local: { driver: "postgres", url, poolSize: 5 } },
      });
      const a = await startServer({ ...config }, silentLogger);
      const b = await startServer(
        { ...config, grpcListen: { host: "127.0.0.1", port: 0 } },
        silentLogger,
      );
      try {
        const on = (s: RunningServer, token: string) =>
          secretClient({ url: `http://127.0.0.1:${s.httpPort}`, protocol: "connect", token });
        const { id, value } = await createTestToken(a.domain, [
          { projectId: PROJECT, role: "read_only", pathPrefix: "/" },
        ]);
        const w = new Watch(on(b, value), { projectId: PROJECT });
        await w.until((x) => x.received.length > 0);
        // Warm B's authenticator cache with the token.
        await on(b, value).listSecrets({ projectId: PROJECT });
        const admin = adminClient({
          url: `http://127.0.0.1:${a.httpPort}`,
          protocol: "connect",
          token: bootstrapToken,
        });
        await admin.revokeToken({ tokenId: id });
        const revoked = performance.now();
        const end = await endOf(w, 5_000);
        expect(end.code).toBe(Code.Unauthenticated);
        expect(end.at - revoked).toBeLessThan(1_000);
        // B's cache dropped the token too (it would otherwise trust it for 2 s).
        const call = await on(b, value)
          .listSecrets({ projectId: PROJECT })
          .then(
            () => "OK",
            (e: unknown) => ConnectError.from(e).code,
          );
        expect(call).toBe(Code.Unauthenticated);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
        await dropPostgresDatabase(url);
      }
    }, 30_000);
  },
);

describe.each(serverBackends)("WatchSecrets resuming from an old cursor on $name", (backend) => {
  it("reads only its project's (and selectors') events from the outbox, in bounded pages", async () => {
    const test = await backend.start();
    try {
      const feed = test.server.feeds.get("local");
      // A busy outbox: another project's events, older than this project's.
      await feed.db.execute(sql`
        insert into watch_events (kind, project_id, secret_id, path, name)
        select 'secret_updated', ${OTHER_PROJECT}::uuid, gen_random_uuid(), '/old', 'bulk-' || g
        from generate_series(1, 5000) g`);
      const admin = test.client("connect", test.adminToken);
      for (const [name, path] of [
        ["a", "/old/a"],
        ["b", "/old/b"],
        ["c", "/old"],
      ]) {
        await admin.createSecret({
          projectId: PROJECT,
          name: name as string,
          path,
          firstVersion: { data: text(name as string) },
        });
      }
      // The feed (shared by every stream) has read it all once.
      const head = await finalHead(feed.db);
      feed.wake();
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (!feed.isBehind(head)) resolve(clearInterval(check));
        }, 20);
      });

      let fetched = 0;
      const execute = feed.db.execute.bind(feed.db);
      // Counts the rows each query returns (a real query, observed).
      const spy = vi.spyOn(feed.db, "execute").mockImplementation((async (
        query: Parameters<typeof execute>[0],
      ) => {
        const result = await execute(query);
        fetched += rowsOf(result).length;
        return result;
      }) as never);
      try {
        const sinceCursor = formatCursor(feed.epoch, ORIGIN);
        const all = new Watch(admin, { projectId: PROJECT, sinceCursor });
        await all.until((x) => x.events.length >= 6);
        expect(kinds(all)).toEqual([
          "SECRET_CREATED a#0",
          "VERSION_CREATED a#1",
          "SECRET_CREATED b#0",
          "VERSION_CREATED b#1",
          "SECRET_CREATED c#0",
          "VERSION_CREATED c#1",
        ]);
        const some = new Watch(admin, {
          projectId: PROJECT,
          sinceCursor,
          selectors: [
            prefix("/old/a"),
            { selector: { case: "location", value: { path: "/old", name: "c" } } },
          ],
        });
        await some.until((x) => x.events.length >= 4);
        expect(kinds(some)).toEqual([
          "SECRET_CREATED a#0",
          "VERSION_CREATED a#1",
          "SECRET_CREATED c#0",
          "VERSION_CREATED c#1",
        ]);
        // Both caught up reading their own rows (plus a few of state), not the 5000 others.
        expect(fetched).toBeLessThan(50);
        await Promise.all([all.stop(), some.stop()]);
      } finally {
        spy.mockRestore();
      }
    } finally {
      await test.stop();
    }
  }, 60_000);
});
