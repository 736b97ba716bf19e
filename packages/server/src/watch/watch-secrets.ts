import {
  comparePositions,
  type EventQuery,
  finalHead,
  ORIGIN,
  type OutboxEvent,
  type Position,
  readEvents,
  watchState,
} from "../db/watch-events.ts";
import { resolveAddress } from "../domain/addressing.ts";
import { noteFacts } from "../domain/audit.ts";
import {
  isUnder,
  projectNotFound,
  projectReadable,
  requirePrincipal,
  type Scope,
  scopesFor,
} from "../domain/authz.ts";
import type { Caller, Principal } from "../domain/caller.ts";
import type { DomainDeps } from "../domain/context.ts";
import { invalid, permissionDenied, unavailable } from "../domain/errors.ts";
import { normalizePath, validateName, validateUuid } from "../domain/validation.ts";
import { epochTag, formatCursor, parseCursor } from "./cursor.ts";
import { PAGE, type RegionFeed, type Subscriber, type WatchFeeds } from "./feed.ts";
import { type TokenBound, type TokenStreams, tokenEnded } from "./token-streams.ts";

export type WatchSelector =
  | { kind: "secretId"; secretId: string }
  | { kind: "location"; path: string; name: string }
  | { kind: "pathPrefix"; pathPrefix: string };

export interface WatchInput {
  region: string;
  projectId: string;
  selectors: WatchSelector[];
  sinceCursor: string;
  /** Undefined: the default. */
  heartbeatMs: number | undefined;
}

/** What the stream sends: an outbox event, a heartbeat or a resync. */
export type WatchMessage =
  | { kind: "heartbeat" | "resync"; cursor: string; occurredAt: Date }
  | ({ cursor: string } & Omit<OutboxEvent, "position">);

export const MAX_SELECTORS = 1000;
export const HEARTBEAT_MS = { default: 15_000, min: 1_000, max: 300_000 };
/** A live stream whose client reads slower than this many queued events falls back to reading pages. */
const MAX_QUEUED = 10_000;

/**
 * WatchSecrets: validates and authorizes at once (throwing), then returns the
 * stream, which yields a heartbeat with the starting cursor, the events after
 * since_cursor (read from the outbox), and live events from the region's
 * feed, with a heartbeat after each quiet `heartbeatMs`. Ends with
 * UNAVAILABLE when the server shuts down, with UNAUTHENTICATED as soon as
 * its token is revoked (on any replica) or expires, and with the signal's
 * reason (DEADLINE_EXCEEDED or CANCELED) when it aborts, never with OK.
 * A token holds at most the configured number of open streams per replica
 * (RESOURCE_EXHAUSTED beyond).
 *
 * A caller sees an event only when it may read (or access) the secret where
 * the event left it; a secret moved out of its reach looks deleted to it.
 *
 * `encode` turns each message into what the transport sends, so that no
 * second iterator layer sits between the stream and the wire.
 */
export function watchSecrets<T>(
  domain: DomainDeps,
  feeds: WatchFeeds,
  caller: Caller,
  input: WatchInput,
  signal: AbortSignal,
  encode: (m: WatchMessage) => T,
): AsyncIterableIterator<T> {
  const { region, id: projectId } = resolveAddress(domain, caller, input, "projectId");
  noteFacts(caller.audit, { projectId });
  const selectors = compileSelectors(input.selectors);
  const heartbeatMs = heartbeatOf(input.heartbeatMs);
  const since = parseCursor(input.sinceCursor);
  const principal = requirePrincipal(caller.principal);
  const filter = new EventFilter(projectId, selectors, watchScopes(principal, projectId));
  return new WatchStream(
    feeds.get(region.name),
    { streams: feeds.tokens, id: principal.tokenId, expiresAt: principal.expiresAt?.getTime() },
    filter,
    heartbeatMs,
    since,
    signal,
    encode,
  );
}

/** The token a stream was opened with: the stream ends when it is revoked or expires. */
interface StreamToken {
  streams: TokenStreams;
  id: string;
  /** Epoch ms; undefined: never. */
  expiresAt: number | undefined;
}

type Visible = Omit<OutboxEvent, "position">;

/**
 * One open stream. It is a plain iterator object rather than an async
 * generator, and keeps no closures, timers or listeners of its own:
 * thousands of idle streams are the normal case, and each holds only this
 * object, one pending promise, and its place in the feed (whose tick drives
 * its heartbeats and notices its abort).
 */
class WatchStream<T> implements AsyncIterableIterator<T>, Subscriber, TokenBound {
  /**
   * Where the stream is: live, the last event yielded; catching up, how far
   * the outbox was read (what `page` holds comes before it). Undefined
   * before the first message.
   */
  private position: Position | undefined;
  /** Messages read from the outbox, not yet yielded (catching up). */
  private page: WatchMessage[] = [];
  /** Events handed over by the feed, not yet yielded (live). */
  private queue: { position: Position; event: Visible }[] = [];
  /** Live positions at or before this were seen (handed over), visible or not. */
  private after: Position = ORIGIN;
  /** The database's final head as `start` read it, until the first catch-up takes it. */
  private startedAtFinal: Position | undefined;
  private subscribed = false;
  private overflowed = false;
  private closed = false;
  private finished = false;
  private quietUntil = 0;
  private wakeUp: (() => void) | undefined;
  /** Set when the token was revoked: the error the stream ends with. */
  private ended: Error | undefined;

  /** Registers with the token's streams: RESOURCE_EXHAUSTED past the per-token cap. */
  constructor(
    private readonly feed: RegionFeed,
    private readonly token: StreamToken,
    private readonly filter: EventFilter,
    private readonly heartbeatMs: number,
    private readonly since: { epoch: string; position: Position } | undefined,
    private readonly signal: AbortSignal,
    private readonly encode: (m: WatchMessage) => T,
  ) {
    token.streams.register(token.id, this);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * The next message: queued events first, then a heartbeat once quiet.
   * One async frame per waiting stream, so the loop is written inline.
   */
  async next(): Promise<IteratorResult<T>> {
    if (this.finished) return { done: true, value: undefined };
    try {
      this.checkToken();
      if (this.position === undefined) return this.yielding(await this.start());
      for (;;) {
        this.signal.throwIfAborted();
        this.checkToken();
        const read = this.page.shift();
        if (read !== undefined) return this.yielding(read);
        if (!this.subscribed) {
          // Catch up from the outbox to the feed's head (the feed only hands
          // out final events), then subscribe in the same tick as the check,
          // so that nothing falls between. A feed nobody watched moves its
          // head first (RegionFeed.catchUp).
          await this.feed.catchUp(this.startedAtFinal);
          this.startedAtFinal = undefined;
          if (this.feed.isBehind(this.position)) {
            await this.readPage();
            continue;
          }
          this.after = this.position;
          this.subscribed = true;
          this.feed.subscribe(this);
        }
        if (this.overflowed) {
          // The client reads too slowly: read from the outbox again from what was last sent.
          this.unsubscribe();
          continue;
        }
        const head = this.queue.shift();
        if (head !== undefined) {
          this.position = head.position;
          return this.yielding({ cursor: this.cursor(head.position), ...head.event });
        }
        if (this.closed) {
          throw unavailable("the server is shutting down; reconnect with your last cursor");
        }
        if (Date.now() >= this.quietUntil) {
          return this.yielding({
            kind: "heartbeat",
            cursor: this.cursor(this.after),
            occurredAt: new Date(),
          });
        }
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
        });
        this.wakeUp = undefined;
      }
    } catch (e) {
      this.finish();
      throw e;
    }
  }

  async return(): Promise<IteratorResult<T>> {
    this.finish();
    return { done: true, value: undefined };
  }

  // Subscriber: called by the feed.

  deliver(events: readonly OutboxEvent[]): void {
    if (this.overflowed) return;
    const queued = this.queue.length;
    for (const e of events) {
      if (comparePositions(e.position, this.after) <= 0) continue;
      this.after = e.position;
      const event = this.filter.view(e);
      if (event !== undefined) this.queue.push({ position: e.position, event });
    }
    if (this.queue.length > MAX_QUEUED) {
      this.overflowed = true;
      this.queue = [];
    }
    // Only a stream with something to send wakes up: a write elsewhere in
    // the project must not cost every other stream a message.
    if (this.queue.length > queued || this.overflowed) this.wakeUp?.();
  }

  /**
   * Time for a heartbeat, or the call was cancelled or ran past its
   * deadline: a waiting stream notices an abort at its next tick rather than
   * through a listener of its own.
   */
  tick(now: number): void {
    const expired = this.token.expiresAt !== undefined && now >= this.token.expiresAt;
    if (now >= this.quietUntil || this.signal.aborted || expired) this.wakeUp?.();
  }

  close(): void {
    this.closed = true;
    this.wakeUp?.();
  }

  // TokenBound: called when the token is revoked.

  end(reason: Error): void {
    this.ended ??= reason;
    this.wakeUp?.();
  }

  /**
   * A revoked token's stream ends before its next message; an expiring
   * one's at its expiry (noticed at the feed's next tick).
   */
  private checkToken(): void {
    if (this.ended !== undefined) throw this.ended;
    const { expiresAt } = this.token;
    if (expiresAt !== undefined && Date.now() >= expiresAt) throw tokenEnded();
  }

  /**
   * The first message. "Now" is the database's final head, not the feed's,
   * which may lag it by a notification: a watch started after a commit must
   * not report it.
   */
  private async start(): Promise<WatchMessage> {
    const { feed, since } = this;
    let resync = false;
    let position: Position;
    if (since === undefined) {
      position = await finalHead(feed.db);
    } else {
      const { pruned } = await watchState(feed.db);
      resync = since.epoch !== epochTag(feed.epoch) || comparePositions(since.position, pruned) < 0;
      position = resync ? await finalHead(feed.db) : since.position;
    }
    this.position = position;
    if (since === undefined || resync) this.startedAtFinal = position;
    return {
      kind: resync ? "resync" : "heartbeat",
      cursor: this.cursor(position),
      occurredAt: new Date(),
    };
  }

  /**
   * Reads one page of the outbox after `position`, up to the feed's head,
   * into `page`: at most PAGE of this stream's project's (and selectors')
   * events, filtered by the database, so that resuming from an old cursor
   * does not read other projects' events.
   */
  private async readPage(): Promise<void> {
    const upTo = this.feed.head;
    const { events } = await readEvents(
      this.feed.db,
      this.position ?? ORIGIN,
      PAGE,
      upTo,
      this.filter.query,
    );
    for (const e of events) {
      const event = this.filter.view(e);
      if (event !== undefined) this.page.push({ cursor: this.cursor(e.position), ...event });
    }
    this.position = events.length < PAGE ? upTo : (events.at(-1)?.position ?? upTo);
  }

  private yielding(m: WatchMessage): IteratorResult<T> {
    this.quietUntil = Date.now() + this.heartbeatMs;
    return { done: false, value: this.encode(m) };
  }

  private cursor(p: Position): string {
    return formatCursor(this.feed.epoch, p);
  }

  private unsubscribe(): void {
    if (this.subscribed) this.feed.unsubscribe(this);
    this.subscribed = false;
    this.overflowed = false;
    this.queue = [];
  }

  private finish(): void {
    if (!this.finished) this.token.streams.release(this.token.id, this);
    this.finished = true;
    this.unsubscribe();
    this.wakeUp?.();
  }
}

function heartbeatOf(ms: number | undefined): number {
  if (ms === undefined) return HEARTBEAT_MS.default;
  if (ms < HEARTBEAT_MS.min || ms > HEARTBEAT_MS.max) {
    throw invalid("heartbeat_interval", "must be between 1 second and 5 minutes");
  }
  return ms;
}

/** A set of strings; a few are kept as an array, which costs less than a Set. */
type Members = readonly string[] | ReadonlySet<string>;

const membersOf = (values: string[]): Members => (values.length <= 4 ? values : new Set(values));
const isMember = (m: Members, v: string) =>
  Array.isArray(m) ? m.includes(v) : (m as ReadonlySet<string>).has(v);

/** The selectors, validated; undefined: none, which selects everything. */
interface Selectors {
  ids: Members;
  /** `locationKey(path, name)` of each location selector. */
  locations: Members;
  prefixes: readonly string[];
  /** The same, for the database to filter a catch-up; undefined when a prefix is "/". */
  query: EventQuery["selectors"];
}

function compileSelectors(selectors: WatchSelector[]): Selectors | undefined {
  if (selectors.length > MAX_SELECTORS) {
    throw invalid("selectors", `at most ${MAX_SELECTORS} selectors`);
  }
  if (selectors.length === 0) return undefined;
  const ids: string[] = [];
  const locations: string[] = [];
  const prefixes: string[] = [];
  const places: { path: string; name: string }[] = [];
  selectors.forEach((s, i) => {
    const field = `selectors[${i}]`;
    switch (s.kind) {
      case "secretId":
        ids.push(validateUuid(s.secretId, `${field}.secret_id`));
        break;
      case "location": {
        const path = normalizePath(s.path, `${field}.location.path`);
        const name = validateName(s.name, `${field}.location.name`);
        locations.push(locationKey(path, name));
        places.push({ path, name });
        break;
      }
      case "pathPrefix":
        prefixes.push(normalizePath(s.pathPrefix, `${field}.path_prefix`));
        break;
    }
  });
  return {
    ids: membersOf(ids),
    locations: membersOf(locations),
    prefixes,
    query: prefixes.includes("/")
      ? undefined
      : { secretIds: ids, locations: places, pathPrefixes: prefixes },
  };
}

const locationKey = (path: string, name: string) => `${path}\u0000${name}`;

function selectsAt(s: Selectors, path: string, name: string): boolean {
  return isMember(s.locations, locationKey(path, name)) || s.prefixes.some((p) => isUnder(path, p));
}

/** Which events a stream sends, and how each looks to its caller. */
class EventFilter {
  /** What the database keeps of the outbox for this stream's catch-up: a superset of what it shows. */
  readonly query: EventQuery;

  constructor(
    private readonly projectId: string,
    private readonly selectors: Selectors | undefined,
    private readonly scopes: Scope[] | "all",
  ) {
    this.query = {
      projectId,
      ...(selectors?.query !== undefined && { selectors: selectors.query }),
    };
  }

  /** The event as this stream sends it, or undefined when it selects or may see none of it. */
  view(e: OutboxEvent): Visible | undefined {
    if (e.projectId !== this.projectId || !this.selects(e)) return undefined;
    return visibleTo(this.scopes, e);
  }

  /**
   * A selector matches the previous location only where the caller could
   * see it: otherwise a location selector would probe, through a move into
   * reach, where a secret hidden from the caller used to be.
   */
  private selects(e: OutboxEvent): boolean {
    const s = this.selectors;
    if (s === undefined) return true;
    return (
      isMember(s.ids, e.secretId) ||
      selectsAt(s, e.path, e.name) ||
      (e.previousPath !== null &&
        e.previousName !== null &&
        reaches(this.scopes, e.projectId, e.previousPath) &&
        selectsAt(s, e.previousPath, e.previousName))
    );
  }
}

/**
 * The scopes where the principal may read or access: a sidecar holding only
 * `secret_access` must be able to follow what it reads. No grant on the
 * project is NOT_FOUND; grants without either permission, PERMISSION_DENIED.
 */
function watchScopes(principal: Principal, projectId: string): Scope[] | "all" {
  if (!projectReadable(principal, projectId)) throw projectNotFound(projectId);
  const read = scopesFor(principal, "read", projectId);
  const access = scopesFor(principal, "access", projectId);
  if (read === "all" || access === "all") return "all";
  const scopes = [...read, ...access];
  if (scopes.length === 0) {
    throw permissionDenied("this token may neither read nor access secrets in this project");
  }
  return scopes;
}

/** Whether the scopes reach a path of a project. */
function reaches(scopes: Scope[] | "all", projectId: string, path: string): boolean {
  return (
    scopes === "all" || scopes.some((s) => s.projectId === projectId && isUnder(path, s.pathPrefix))
  );
}

/**
 * The event as this caller may see it, or undefined. Each location it
 * carries is one the caller may see: a secret moved in from out of reach
 * arrives without its previous location, and one moved out of reach looks
 * deleted where it was, without its new one.
 */
function visibleTo(scopes: Scope[] | "all", e: OutboxEvent): Visible | undefined {
  const { position: _, ...event } = e;
  if (scopes === "all") return event;
  const previous =
    e.previousPath !== null &&
    e.previousName !== null &&
    reaches(scopes, e.projectId, e.previousPath);
  if (reaches(scopes, e.projectId, e.path)) {
    return previous ? event : { ...event, previousPath: null, previousName: null };
  }
  if (previous) {
    // Moved out of reach: to this caller the secret is gone from where it was.
    return {
      ...event,
      kind: "secret_deleted",
      path: e.previousPath as string,
      name: e.previousName as string,
      previousPath: null,
      previousName: null,
    };
  }
  return undefined;
}
