import {
  comparePositions,
  finalHead,
  type OutboxEvent,
  type Position,
  readEvents,
  watchState,
} from "../db/watch-events.ts";
import {
  isUnder,
  type Principal,
  projectNotFound,
  projectReadable,
  requirePrincipal,
  type Scope,
  scopesFor,
} from "../domain/authz.ts";
import type { Caller, Domain } from "../domain/context.ts";
import { invalid, permissionDenied, unavailable } from "../domain/errors.ts";
import { noteProject, regionFor } from "../domain/shared.ts";
import { normalizePath, validateName, validateUuid } from "../domain/validation.ts";
import { epochTag, formatCursor, parseCursor } from "./cursor.ts";
import { PAGE, type Subscriber, type WatchFeeds } from "./feed.ts";

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
 * WatchSecrets: validates and authorizes, then yields a heartbeat with the
 * starting cursor, the events after since_cursor (read from the outbox), and
 * live events from the region's feed, with a heartbeat after each quiet
 * `heartbeatMs`. Ends with UNAVAILABLE when the server shuts down.
 *
 * A caller sees an event only when it may read (or access) the secret where
 * the event left it; a secret moved out of its reach looks deleted to it.
 */
export async function* watchSecrets(
  domain: Domain,
  feeds: WatchFeeds,
  caller: Caller,
  input: WatchInput,
  signal: AbortSignal,
): AsyncGenerator<WatchMessage> {
  const region = regionFor(domain, caller, input.region);
  const projectId = validateUuid(input.projectId, "project_id");
  noteProject(caller, projectId);
  const matches = selectorMatcher(input.selectors);
  const heartbeatMs = heartbeatOf(input.heartbeatMs);
  const since = parseCursor(input.sinceCursor);
  const scopes = watchScopes(requirePrincipal(caller.principal), projectId);
  const feed = feeds.get(region.name);
  const view = (e: OutboxEvent) =>
    e.projectId === projectId && matches(e) ? visibleTo(scopes, e) : undefined;
  const cursor = (p: Position) => formatCursor(feed.epoch, p);

  // "Now" is the database's final head, not the feed's, which may lag it by
  // a notification: a watch started after a commit must not report it.
  let position: Position;
  let resync = false;
  if (since === undefined) {
    position = await finalHead(feed.db);
  } else {
    const { pruned } = await watchState(feed.db);
    resync = since.epoch !== epochTag(feed.epoch) || comparePositions(since.position, pruned) < 0;
    position = resync ? await finalHead(feed.db) : since.position;
  }
  yield { kind: resync ? "resync" : "heartbeat", cursor: cursor(position), occurredAt: new Date() };

  for (;;) {
    // Catch up from the outbox to the feed's head; the feed only hands out final events.
    while (feed.isBehind(position)) {
      const upTo = feed.head;
      const { events } = await readEvents(feed.db, position, PAGE, upTo);
      for (const e of events) {
        position = e.position;
        const out = view(e);
        if (out !== undefined) yield { cursor: cursor(e.position), ...out };
      }
      if (events.length < PAGE) position = upTo;
      signal.throwIfAborted();
    }
    // Live: subscribe in the same tick as the check above, so nothing falls between.
    const live = new LiveStream(position, view);
    feed.subscribe(live);
    try {
      for (;;) {
        const next = await live.next(heartbeatMs, signal);
        // The deadline passed or the client left: end with the signal's
        // reason (DEADLINE_EXCEEDED or CANCELED), never with OK.
        if (next === "aborted") {
          signal.throwIfAborted();
          return;
        }
        if (next === "closed") {
          throw unavailable("the server is shutting down; reconnect with your last cursor");
        }
        if (next === "overflow") break;
        if (next === "quiet") {
          yield { kind: "heartbeat", cursor: cursor(live.after), occurredAt: new Date() };
          continue;
        }
        position = next.position;
        yield { cursor: cursor(next.position), ...next.event };
      }
    } finally {
      feed.unsubscribe(live);
    }
    // Overflowed: read from the outbox again from what was last sent.
  }
}

type Visible = Omit<OutboxEvent, "position">;

/** A subscriber with a queue the generator drains. */
class LiveStream implements Subscriber {
  private queue: { position: Position; event: Visible }[] = [];
  private wakeUp: (() => void) | undefined;
  private closed = false;
  private overflowed = false;

  constructor(
    /** Events at or before this were already seen. */
    public after: Position,
    private readonly view: (e: OutboxEvent) => Visible | undefined,
  ) {}

  deliver(events: readonly OutboxEvent[]): void {
    if (this.overflowed) return;
    const queued = this.queue.length;
    for (const e of events) {
      if (comparePositions(e.position, this.after) <= 0) continue;
      this.after = e.position;
      const event = this.view(e);
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

  close(): void {
    this.closed = true;
    this.wakeUp?.();
  }

  /** The next queued event, or why there is none ("quiet": nothing for `quietMs`). */
  async next(
    quietMs: number,
    signal: AbortSignal,
  ): Promise<{ position: Position; event: Visible } | "quiet" | "closed" | "aborted" | "overflow"> {
    const ready = () => {
      if (signal.aborted) return "aborted";
      if (this.overflowed) return "overflow";
      const head = this.queue.shift();
      if (head !== undefined) return head;
      if (this.closed) return "closed";
      return undefined;
    };
    const now = ready();
    if (now !== undefined) return now;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, quietMs);
      signal.addEventListener("abort", done);
      this.wakeUp = done;
    });
    return ready() ?? "quiet";
  }
}

function heartbeatOf(ms: number | undefined): number {
  if (ms === undefined) return HEARTBEAT_MS.default;
  if (ms < HEARTBEAT_MS.min || ms > HEARTBEAT_MS.max) {
    throw invalid("heartbeat_interval", "must be between 1 second and 5 minutes");
  }
  return ms;
}

/** A predicate over events from the selectors; no selector matches everything. */
function selectorMatcher(selectors: WatchSelector[]): (e: OutboxEvent) => boolean {
  if (selectors.length > MAX_SELECTORS) {
    throw invalid("selectors", `at most ${MAX_SELECTORS} selectors`);
  }
  if (selectors.length === 0) return () => true;
  const ids = new Set<string>();
  const locations = new Set<string>();
  const prefixes: string[] = [];
  selectors.forEach((s, i) => {
    const field = `selectors[${i}]`;
    switch (s.kind) {
      case "secretId":
        ids.add(validateUuid(s.secretId, `${field}.secret_id`));
        break;
      case "location":
        locations.add(
          locationKey(
            normalizePath(s.path, `${field}.location.path`),
            validateName(s.name, `${field}.location.name`),
          ),
        );
        break;
      case "pathPrefix":
        prefixes.push(normalizePath(s.pathPrefix, `${field}.path_prefix`));
        break;
    }
  });
  const at = (path: string, name: string) =>
    locations.has(locationKey(path, name)) || prefixes.some((p) => isUnder(path, p));
  return (e) =>
    ids.has(e.secretId) ||
    at(e.path, e.name) ||
    (e.previousPath !== null && e.previousName !== null && at(e.previousPath, e.previousName));
}

const locationKey = (path: string, name: string) => `${path}\u0000${name}`;

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

/** The event as this caller may see it, or undefined. */
function visibleTo(scopes: Scope[] | "all", e: OutboxEvent): Visible | undefined {
  const { position: _, ...event } = e;
  if (scopes === "all") return event;
  const reaches = (path: string) =>
    scopes.some((s) => s.projectId === e.projectId && isUnder(path, s.pathPrefix));
  if (reaches(e.path)) return event;
  if (e.previousPath !== null && e.previousName !== null && reaches(e.previousPath)) {
    // Moved out of reach: to this caller the secret is gone from where it was.
    return {
      ...event,
      kind: "secret_deleted",
      path: e.previousPath,
      name: e.previousName,
      previousPath: null,
      previousName: null,
    };
  }
  return undefined;
}
