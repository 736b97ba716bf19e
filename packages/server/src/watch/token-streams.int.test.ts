import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../db/client.ts";
import {
  type Backend,
  backends,
  createTestToken,
  PROJECT,
  postgresBackend,
  silentLogger,
  testDomain,
} from "../testing/backends.ts";
import { type TokenCache, TokenStreams } from "./token-streams.ts";

const HOUR = 3_600_000;

/** A stream as TokenStreams sees it, recording how it ended. */
class Stream {
  ended: Error | undefined;
  end(e: Error): void {
    this.ended = e;
  }
}
const stream = () => new Stream();

/** An authenticator cache that records what it was told to forget. */
class Cache implements TokenCache {
  readonly forgotten: string[] = [];
  cleared = 0;
  forget(ids: readonly string[]): void {
    this.forgotten.push(...ids);
  }
  forgetAll(): void {
    this.cleared += 1;
  }
}
const cache = () => new Cache();

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const reader = [{ projectId: PROJECT, role: "read_only" as const, pathPrefix: "/" }];

describe.each(backends)("token streams on $name", (backend) => {
  let database: Database;
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(() => database?.close());
  const domain = () => testDomain({ local: database });

  it("tells another replica on the same database, which forgets the tokens and ends their streams", async () => {
    // Two instances on one database stand for two replicas; neither sweeps.
    const hereCache = cache();
    const thereCache = cache();
    const here = await TokenStreams.start(database, {
      maxPerToken: 10,
      cache: hereCache,
      logger: silentLogger,
      sweepMs: HOUR,
    });
    const there = await TokenStreams.start(database, {
      maxPerToken: 10,
      cache: thereCache,
      logger: silentLogger,
      sweepMs: HOUR,
    });
    try {
      // More ids than one notification carries.
      const ids = Array.from({ length: 400 }, () => randomUUID());
      const watched = ids.map((id) => {
        const s = stream();
        there.register(id, s);
        return s;
      });
      const kept = stream();
      const other = randomUUID();
      there.register(other, kept);
      here.revoked(ids);
      expect(hereCache.forgotten).toEqual(ids);
      await until(() => watched.every((s) => s.ended !== undefined));
      expect(watched[0]?.ended?.message).toContain("revoked or has expired");
      expect(new Set(thereCache.forgotten)).toEqual(new Set(ids));
      expect(kept.ended).toBeUndefined();
      expect(there.count(other)).toBe(1);
      expect(there.count(ids[0] as string)).toBe(0);
      // A stream of a just-revoked token that registers late is refused.
      expect(() => there.register(ids[1] as string, stream())).toThrow("revoked or has expired");
    } finally {
      await Promise.all([here.close(), there.close()]);
    }
  });

  it("ends, by its sweep, the streams of a token revoked without a notification", async () => {
    const tokens = await TokenStreams.start(database, {
      maxPerToken: 10,
      cache: cache(),
      logger: silentLogger,
      sweepMs: 100,
    });
    try {
      const revoked = await createTestToken(domain(), reader);
      const expiring = await createTestToken(domain(), reader, {
        expiresAt: new Date(Date.now() + 300),
      });
      const live = await createTestToken(domain(), reader);
      const [a, b, c] = [stream(), stream(), stream()];
      tokens.register(revoked.id, a);
      tokens.register(expiring.id, b);
      tokens.register(live.id, c);
      // As a replica that died between its commit and its NOTIFY would leave it.
      await database.db.execute(sql`update tokens set revoked_at = now() where id = ${revoked.id}`);
      await until(() => a.ended !== undefined && b.ended !== undefined);
      await new Promise((r) => setTimeout(r, 300));
      expect(c.ended).toBeUndefined();
    } finally {
      await tokens.close();
    }
  });

  it("refuses a token's stream past the cap, naming the setting", async () => {
    const tokens = await TokenStreams.start(database, {
      maxPerToken: 2,
      cache: cache(),
      logger: silentLogger,
      sweepMs: HOUR,
    });
    try {
      const id = randomUUID();
      const first = stream();
      tokens.register(id, first);
      tokens.register(id, stream());
      expect(() => tokens.register(id, stream())).toThrow("COFFER_WATCH_STREAMS_PER_TOKEN");
      tokens.release(id, first);
      tokens.register(id, stream());
      expect(tokens.count(id)).toBe(2);
    } finally {
      await tokens.close();
    }
  });
});

describe.skipIf(postgresBackend === undefined)("token streams on postgres, reconnecting", () => {
  let database: Database;
  beforeAll(async () => {
    database = await (postgresBackend as Backend).open();
  });
  afterAll(() => database?.close());

  it("after its LISTEN connection drops, forgets every cached token and checks its streams' tokens", async () => {
    const c = cache();
    const tokens = await TokenStreams.start(database, {
      maxPerToken: 10,
      cache: c,
      logger: silentLogger,
      sweepMs: HOUR,
    });
    try {
      const revoked = await createTestToken(testDomain({ local: database }), reader);
      const s = stream();
      tokens.register(revoked.id, s);
      // Revoked while the notification could not arrive.
      await database.db.execute(sql`update tokens set revoked_at = now() where id = ${revoked.id}`);
      await database.db.execute(sql`
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and query ilike 'listen%'`);
      await until(() => s.ended !== undefined, 10_000);
      expect(c.cleared).toBeGreaterThanOrEqual(1);
    } finally {
      await tokens.close();
    }
  }, 20_000);
});
