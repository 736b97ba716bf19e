import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import type { Database, Db } from "../db/client.ts";
import { executeRendered, render } from "../db/raw-sql.ts";
import {
  comparePositions,
  finalHead,
  type OutboxEvent,
  type Position,
  readEvents,
  watchState,
} from "../db/watch-events.ts";
import type { TokenStreams } from "./token-streams.ts";

/** The channel replicas NOTIFY after committing a change, and LISTEN on. */
export const WATCH_CHANNEL = "coffer_watch";

/** Events read per query, by the feed and by streams catching up. */
export const PAGE = 1000;

/** Prepared by name: it runs after every committed write. */
const NOTIFY = render(sql`select pg_notify(${WATCH_CHANNEL}, ${sql.placeholder("payload")}::text)`);

/** A safety net under LISTEN: read anyway this often, in case a notification was lost. */
export const SAFETY_POLL_MS = 5_000;
/** While events are held back behind a running transaction, look again after this, doubling. */
const HELD_RETRY_MS = { first: 5, max: 1_000 };

/** A live stream: receives, in order, every event after the position it subscribed at. */
export interface Subscriber {
  deliver(events: readonly OutboxEvent[]): void;
  /** Called every HEARTBEAT_TICK_MS with Date.now(): a quiet stream sends its heartbeat, a cancelled one ends. */
  tick(now: number): void;
  /** The feed is closing (server shutdown): the stream should end. */
  close(): void;
}

/**
 * How often the feed ticks its streams, which send a heartbeat once quiet
 * for their interval: one timer per feed rather than one per stream, so an
 * idle stream holds no timer. Heartbeats come up to this late.
 */
export const HEARTBEAT_TICK_MS = 250;

/**
 * One region's fan-out. A single reader follows the outbox (woken by
 * NOTIFY from any replica, by a safety poll, and again while events are held
 * back) and hands each batch to every live stream of the region, so a write
 * costs one query per replica, not one per stream.
 *
 * Invariant: every event at or before `head` has been handed to every
 * subscriber that was live when it was read. A stream catches up from the
 * database to `head`, then subscribes in the same tick, so it misses nothing
 * and sees nothing twice.
 *
 * A feed with no live stream reads nothing: a replica that nobody watches
 * would otherwise read back every write it makes (a query per group-committed
 * batch of creates, 9 % of a create's server CPU: bench/RESULTS.md, writes
 * reading of 2026-12-07, twelfth session). It only notes that it is
 * `stale`. A stream about to subscribe first moves the head of a stale feed
 * that still has no stream to the database's final head (catchUp): no live
 * stream is owed the events it skips, and the stream reads what it needs
 * up to there itself. Its subscription then wakes the feed, which reads
 * from there.
 */
export class RegionFeed {
  private readonly subscribers = new Set<Subscriber>();
  private polling = false;
  private again = false;
  private heldDelay = HELD_RETRY_MS.first;
  private heldTimer: NodeJS.Timeout | undefined;
  private readonly safetyTimer: NodeJS.Timeout;
  private readonly tickTimer: NodeJS.Timeout;
  private unlisten: (() => Promise<void>) | undefined;
  private closed = false;
  private notifying = false;
  private notifyAgain = false;
  /** Woken with no stream to hand events to: there may be events after `position` that were not read. */
  private stale = false;
  /** This feed's NOTIFY payload, so that it does not read the outbox again for its own. */
  private readonly self = randomUUID();

  private constructor(
    readonly region: string,
    readonly db: Db,
    /** The database's watch epoch (see cursor.ts). */
    readonly epoch: string,
    private position: Position,
    private readonly logger: Logger,
    safetyPollMs: number,
  ) {
    this.safetyTimer = setInterval(() => this.wake(), safetyPollMs);
    this.safetyTimer.unref();
    this.tickTimer = setInterval(() => {
      const now = Date.now();
      for (const s of this.subscribers) s.tick(now);
    }, HEARTBEAT_TICK_MS);
    this.tickTimer.unref();
  }

  static async start(
    region: string,
    database: Database,
    logger: Logger,
    safetyPollMs = SAFETY_POLL_MS,
  ): Promise<RegionFeed> {
    const { epoch } = await watchState(database.db);
    const head = await finalHead(database.db);
    const feed = new RegionFeed(
      region,
      database.db,
      epoch,
      head,
      logger.child({ region }),
      safetyPollMs,
    );
    feed.unlisten = await database.listen(
      WATCH_CHANNEL,
      // Its own NOTIFY comes back too: announce already woke it.
      (payload) => {
        if (payload !== feed.self) feed.wake();
      },
      () => feed.wake(),
    );
    return feed;
  }

  /** The newest position handed to live streams. */
  get head(): Position {
    return this.position;
  }

  subscribe(s: Subscriber): void {
    if (this.closed) {
      s.close();
      return;
    }
    this.subscribers.add(s);
    if (this.stale) this.wake();
  }

  /**
   * Called by a stream before it compares its position with `head` to
   * subscribe: a stale feed with no stream moves its head to the database's
   * final head, so that the first stream after a quiet spell does not make
   * the feed read every event written since. `known` is a final head the
   * stream has just read itself (where it started), which spares the query;
   * an older final head is as good, since the stream reads after it.
   */
  async catchUp(known?: Position): Promise<void> {
    if (!this.stale || this.subscribers.size > 0 || this.closed) return;
    let head: Position;
    try {
      head = known ?? (await finalHead(this.db));
    } catch {
      // The database is away: the stream catches up from the older head,
      // as it did before the feed skipped reads (and its own read tells it).
      return;
    }
    // A stream that subscribed meanwhile is owed what follows `position`,
    // and a read in progress moves it itself.
    if (this.subscribers.size === 0 && !this.polling && comparePositions(head, this.position) > 0) {
      this.position = head;
    }
  }

  unsubscribe(s: Subscriber): void {
    this.subscribers.delete(s);
  }

  /**
   * A change committed here: wake this replica's streams at once, and NOTIFY
   * the others. One NOTIFY is in flight at a time; commits during it are
   * covered by one more, so a burst of writes costs a few notifications, and
   * writers never wait for one (a NOTIFY inside the writing transaction
   * would serialize every commit on Postgres's notification lock). If this
   * process dies between a commit and its NOTIFY, the other replicas'
   * safety poll picks the change up.
   */
  announce(): void {
    this.wake();
    if (this.closed) return;
    if (this.notifying) {
      this.notifyAgain = true;
      return;
    }
    this.notifying = true;
    void executeRendered(this.db, NOTIFY, "coffer_watch_notify", { payload: this.self })
      .catch((err: unknown) =>
        this.logger.warn({ err }, "could not NOTIFY other replicas; their safety poll will"),
      )
      .finally(() => {
        this.notifying = false;
        if (this.notifyAgain) {
          this.notifyAgain = false;
          this.announce();
        }
      });
  }

  /** Reads what is new, now or right after the read in progress; with no stream, marks the feed stale. */
  wake(): void {
    if (this.closed) return;
    if (this.subscribers.size === 0) {
      this.stale = true;
      return;
    }
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = true;
    this.stale = false;
    void this.poll().finally(() => {
      this.polling = false;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  private async poll(): Promise<void> {
    try {
      for (;;) {
        const { events, held } = await readEvents(this.db, this.position, PAGE);
        const last = events.at(-1);
        if (last !== undefined && !this.closed) {
          this.position = last.position;
          for (const s of this.subscribers) s.deliver(events);
        }
        if (held) return this.retryHeld();
        this.heldDelay = HELD_RETRY_MS.first;
        if (events.length < PAGE) return;
      }
    } catch (err) {
      // The database is away: the safety poll tries again; streams keep waiting.
      this.logger.warn({ err }, "watch feed could not read the outbox; will retry");
    }
  }

  /** Events are held back behind a transaction still running: look again soon. */
  private retryHeld(): void {
    if (this.heldTimer !== undefined || this.closed) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = undefined;
      this.wake();
    }, this.heldDelay);
    this.heldDelay = Math.min(this.heldDelay * 2, HELD_RETRY_MS.max);
  }

  /** Ends every stream (they answer UNAVAILABLE, so watchers reconnect elsewhere) and stops. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.safetyTimer);
    clearInterval(this.tickTimer);
    clearTimeout(this.heldTimer);
    for (const s of this.subscribers) s.close();
    this.subscribers.clear();
    await this.unlisten?.().catch(() => {});
  }

  isBehind(p: Position): boolean {
    return comparePositions(p, this.position) < 0;
  }
}

/** Every region's feed, and the open streams by token (which live in the home region). */
export class WatchFeeds {
  private constructor(
    private readonly feeds: ReadonlyMap<string, RegionFeed>,
    readonly tokens: TokenStreams,
  ) {}

  static async start(
    regions: Iterable<{ name: string; database: Database }>,
    logger: Logger,
    tokens: TokenStreams,
  ): Promise<WatchFeeds> {
    const feeds = new Map<string, RegionFeed>();
    try {
      for (const { name, database } of regions) {
        feeds.set(name, await RegionFeed.start(name, database, logger));
      }
    } catch (err) {
      await Promise.all([...feeds.values()].map((f) => f.close()));
      await tokens.close();
      throw err;
    }
    return new WatchFeeds(feeds, tokens);
  }

  /** See RegionFeed.announce; a region without a feed (none started yet) is ignored. */
  announce(region: string): void {
    this.feeds.get(region)?.announce();
  }

  get(region: string): RegionFeed {
    const feed = this.feeds.get(region);
    if (feed === undefined) throw new Error(`no watch feed for region ${region}`);
    return feed;
  }

  /**
   * Open watch streams, across regions, from when they open until they end:
   * a stream still catching up from the outbox counts, though it is not yet
   * one of its feed's subscribers.
   */
  get streams(): number {
    return this.tokens.total;
  }

  async close(): Promise<void> {
    await this.tokens.close();
    await Promise.all([...this.feeds.values()].map((f) => f.close()));
  }
}
