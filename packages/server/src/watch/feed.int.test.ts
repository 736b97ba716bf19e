import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../db/client.ts";
import { comparePositions, finalHead, type OutboxEvent } from "../db/watch-events.ts";
import {
  ADMIN_CALLER,
  type Backend,
  backends,
  PROJECT,
  postgresBackend,
  silentLogger,
  testDomain,
} from "../testing/backends.ts";
import { newSecret } from "../testing/domain-helpers.ts";
import { runUnless } from "../testing/skip.ts";
import { RegionFeed, WatchFeeds } from "./feed.ts";
import { TokenStreams } from "./token-streams.ts";
import { watchSecrets } from "./watch-secrets.ts";

const HOUR = 3_600_000;

/** Collects what a feed hands to a live subscriber. */
function collector() {
  const events: OutboxEvent[] = [];
  return {
    events,
    deliver: (batch: readonly OutboxEvent[]) => events.push(...batch),
    tick: () => {},
    close: () => {},
  };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(backends)("watch feed on $name", (backend) => {
  let database: Database;
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(() => database?.close());

  it("wakes on another replica's NOTIFY alone, with no safety poll", async () => {
    // Two feeds on one database stand for two replicas; neither polls.
    const here = await RegionFeed.start("r", database, silentLogger, HOUR);
    const there = await RegionFeed.start("r", database, silentLogger, HOUR);
    try {
      const seen = collector();
      there.subscribe(seen);
      const domain = { ...testDomain({ r: database }), announce: () => here.announce() };
      await newSecret(domain, { name: "notified" });
      await until(() => seen.events.length === 2);
      expect(seen.events.map((e) => e.kind)).toEqual(["secret_created", "version_created"]);
      expect(there.head).toEqual(seen.events[1]?.position);
    } finally {
      await Promise.all([here.close(), there.close()]);
    }
  });

  it("reads nothing while no stream is live, and moves to the final head for the first one", async () => {
    const feed = await RegionFeed.start("r", database, silentLogger, HOUR);
    const domain = { ...testDomain({ r: database }), announce: () => feed.announce() };
    try {
      const start = feed.head;
      await newSecret(domain, { name: "unwatched" });
      await new Promise((r) => setTimeout(r, 200));
      expect(feed.head).toEqual(start);
      // What a stream calls before it subscribes: the events skipped are
      // nobody's (the stream reads its own catch-up from the database).
      await feed.catchUp();
      const head = await finalHead(database.db);
      expect(comparePositions(head, start)).toBeGreaterThan(0);
      expect(feed.head).toEqual(head);
      const seen = collector();
      feed.subscribe(seen);
      await newSecret(domain, { name: "watched" });
      await until(() => seen.events.length === 2);
      expect(seen.events.map((e) => `${e.kind} ${e.name}`)).toEqual([
        "secret_created watched",
        "version_created watched",
      ]);
      // Quiet again, then subscribed without catching up: the subscription
      // itself wakes the feed, which hands out what it skipped.
      feed.unsubscribe(seen);
      await newSecret(domain, { name: "skipped" });
      const late = collector();
      feed.subscribe(late);
      await until(() => late.events.length === 2);
      expect(late.events.map((e) => e.name)).toEqual(["skipped", "skipped"]);
    } finally {
      await feed.close();
    }
  });

  it("catches up to the final head a stream read itself, without reading it again", async () => {
    const feed = await RegionFeed.start("r", database, silentLogger, HOUR);
    const domain = { ...testDomain({ r: database }), announce: () => feed.announce() };
    try {
      await newSecret(domain, { name: "before-start" });
      // Where a stream started; then more is written before it subscribes.
      const started = await finalHead(database.db);
      await newSecret(domain, { name: "after-start" });
      await new Promise((r) => setTimeout(r, 100));
      await feed.catchUp(started);
      expect(feed.head).toEqual(started);
      // What followed the stream's start is still handed out once it subscribes.
      const seen = collector();
      feed.subscribe(seen);
      await until(() => seen.events.length === 2);
      expect(seen.events.map((e) => `${e.kind} ${e.name}`)).toEqual([
        "secret_created after-start",
        "version_created after-start",
      ]);
    } finally {
      await feed.close();
    }
  });

  it("gives the first stream on an idle feed what follows its start, and nothing before", async () => {
    // The stream's own path through catchUp (SPEC section 5: a watch misses
    // nothing, and one started after a commit does not report it), with a
    // write between its first message and its subscription.
    const tokens = await TokenStreams.start(database, {
      maxPerToken: 10,
      cache: { forget: () => {}, forgetAll: () => {} },
      logger: silentLogger,
    });
    const feeds = await WatchFeeds.start([{ name: "r", database }], silentLogger, tokens);
    const domain = { ...testDomain({ r: database }), announce: () => feeds.announce("r") };
    const abort = new AbortController();
    try {
      await newSecret(domain, { name: "before-watch" });
      const stream = watchSecrets(
        domain,
        feeds,
        ADMIN_CALLER,
        { region: "", projectId: PROJECT, selectors: [], sinceCursor: "", heartbeatMs: undefined },
        abort.signal,
        (m) => m,
      );
      expect((await stream.next()).value).toMatchObject({ kind: "heartbeat" });
      await newSecret(domain, { name: "watched-after-start" });
      const seen: string[] = [];
      while (seen.length < 2) {
        const { value } = await stream.next();
        if (value !== undefined && value.kind !== "heartbeat")
          seen.push(`${value.kind} ${"name" in value ? value.name : ""}`);
      }
      expect(seen).toEqual([
        "secret_created watched-after-start",
        "version_created watched-after-start",
      ]);
      await stream.return?.();
    } finally {
      abort.abort();
      await feeds.close();
    }
  });

  it("is not woken by its own NOTIFY coming back: announce already woke it", async () => {
    // Counted as wakes from notifications, not as reads of the outbox: a
    // read finding an event held back behind a running transaction (any
    // database's, since transaction ids are the cluster's) reads again.
    const listen = database.listen;
    const wokenByNotify = new Map<RegionFeed, number>();
    const received: string[] = [];
    let notifying = false;
    database.listen = (channel, onNotify, onListen) =>
      listen.call(
        database,
        channel,
        (payload) => {
          received.push(payload);
          notifying = true;
          try {
            onNotify(payload);
          } finally {
            notifying = false;
          }
        },
        onListen,
      );
    const countWakes = (feed: RegionFeed) => {
      const wake = feed.wake.bind(feed);
      feed.wake = () => {
        if (notifying) wokenByNotify.set(feed, (wokenByNotify.get(feed) ?? 0) + 1);
        wake();
      };
      return feed;
    };
    const here = countWakes(await RegionFeed.start("r", database, silentLogger, HOUR));
    const there = countWakes(await RegionFeed.start("r", database, silentLogger, HOUR));
    try {
      const seen = collector();
      there.subscribe(seen);
      // A feed with no stream reads nothing (the next test): `here` needs one too.
      here.subscribe(collector());
      const domain = { ...testDomain({ r: database }), announce: () => here.announce() };
      await newSecret(domain, { name: "read-once" });
      await until(() => seen.events.length === 2);
      // Both feeds have had the one NOTIFY (`here`'s own, and `there`'s).
      await until(() => received.length === 2);
      expect(wokenByNotify.get(here) ?? 0).toBe(0);
      expect(wokenByNotify.get(there)).toBe(1);
      await until(() => comparePositions(here.head, there.head) === 0);
    } finally {
      database.listen = listen;
      await Promise.all([here.close(), there.close()]);
    }
  });
});

// PGlite runs one transaction at a time, so only Postgres can interleave them.
const onPostgres = runUnless(postgresBackend ? undefined : "needs TEST_DATABASE_URL (Postgres)");

describe("watch feed ordering on postgres", onPostgres, () => {
  let database: Database;
  beforeAll(async () => {
    database = await (postgresBackend as Backend).open();
  });
  afterAll(() => database?.close());

  it("holds back what commits behind an older transaction still running", async () => {
    const feed = await RegionFeed.start("r", database, silentLogger, HOUR);
    const domain = { ...testDomain({ r: database }), announce: () => feed.announce() };
    try {
      const seen = collector();
      feed.subscribe(seen);
      let release: () => void = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      let started: () => void = () => {};
      const ready = new Promise<void>((r) => {
        started = r;
      });
      // The older transaction takes its id first and commits last.
      const older = database.db.transaction(async (tx) => {
        await tx.execute(sql`select pg_current_xact_id()`);
        started();
        await held;
        await tx.execute(sql`
          insert into secrets (id, project_id, region, name, path, type)
          values (${randomUUID()}, ${PROJECT}, 'r', 'older', '/', 'opaque')`);
      });
      await ready;
      await newSecret(domain, { name: "newer" });
      await new Promise((r) => setTimeout(r, 300));
      // Committed, but behind a running transaction: not handed out yet.
      expect(seen.events).toEqual([]);
      release();
      await older;
      feed.announce();
      await until(() => seen.events.length === 3);
      // In transaction order: a cursor taken after "newer" can never skip "older".
      expect(seen.events.map((e) => e.name)).toEqual(["older", "newer", "newer"]);
    } finally {
      await feed.close();
    }
  });
});
