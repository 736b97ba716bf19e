import type http2 from "node:http2";
import { isMap } from "node:util/types";

/**
 * Keeps long-lived Maps that gain and lose an entry on every call from
 * keeping every call's objects alive past the young generation.
 *
 * V8 keeps a Map's entries in a hash table that it replaces when the Map
 * grows, shrinks or fills with deleted entries; the replaced table still
 * references what it held, and a table in the old generation allocates its
 * successors there too. Once a full collection has moved such a Map's table
 * to the old generation (it does for every live young object), each
 * replaced table keeps the calls it held alive through every scavenge until
 * the next mark-compact: the server then promotes about 2 MB per scavenge
 * at 4,000 calls/s, and its mark-compacts come more often. Two Maps do this
 * on every call: node's HTTP/2 session keeps its open streams in one, and
 * the request budget its holders. A copy made entry by entry starts a young
 * table again. Measured with `bench/probes/scavenges.ts` (`FULL_GC_AT`): a
 * bare node:http2 server promoted 0.04 MB per scavenge before its first full
 * collection and 1.8 MB after it, for good, unless its sessions' tables
 * were renewed (bench/RESULTS.md, access reading of 2026-12-06, fourth
 * session).
 */

/** How many calls a Map sees between two renewals: each renewal copies the calls in flight. */
export const RENEW_EVERY = 32;

/**
 * A copy of `map`, entry by entry, in order, of the same class, with a young
 * table. Through Map.prototype's own methods: node's internal maps are of a
 * class whose prototype does not inherit from Map's.
 */
export function freshMap<K, V>(map: Map<K, V>): Map<K, V> {
  const fresh = new (map.constructor as MapConstructor)() as Map<K, V>;
  for (const [key, value] of Map.prototype.entries.call(map)) {
    Map.prototype.set.call(fresh, key, value);
  }
  return fresh;
}

/** Node's per-session state, where it keeps the session's streams by id. */
interface SessionState {
  streams: Map<number, unknown>;
}

/** The symbol node keys a session's state with; null on a node without one. */
let stateKey: symbol | null | undefined;
const streamsSeen = new WeakMap<http2.Http2Session, number>();

function stateOf(session: http2.Http2Session): SessionState | undefined {
  stateKey ??= Object.getOwnPropertySymbols(session).find((k) => k.description === "state") ?? null;
  if (stateKey === null) return undefined;
  const state = (session as unknown as Record<symbol, unknown>)[stateKey];
  // Node's SafeMap is a Map that is not `instanceof Map`.
  return typeof state === "object" && state !== null && isMap((state as SessionState).streams)
    ? (state as SessionState)
    : undefined;
}

/**
 * Counts a new stream of `session`, and every RENEW_EVERY streams gives
 * node's map of the session's streams a young table (see above). Node reads
 * that map afresh on every use and never holds it across turns of the event
 * loop; the copy has the same entries in the same order. On a node whose
 * session keeps no such map (a private detail), and for a session already
 * gone, this does nothing.
 */
export function noteSessionStream(session: http2.Http2Session | undefined): void {
  if (session === undefined) return;
  const seen = (streamsSeen.get(session) ?? 0) + 1;
  streamsSeen.set(session, seen);
  if (seen % RENEW_EVERY !== 0) return;
  const state = stateOf(session);
  if (state !== undefined) state.streams = freshMap(state.streams);
}

/** Whether this node's sessions keep the map noteSessionStream renews (tests: a node upgrade that moves it is noticed). */
export function renewsSessionStreams(session: http2.Http2Session): boolean {
  return stateOf(session) !== undefined;
}
