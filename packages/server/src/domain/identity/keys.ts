import {
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from "jose";
import { LRUCache } from "lru-cache";
import type { TrustedIssuerRow } from "../../db/schema.ts";
import { FetchFailed, fetchJson } from "./fetch.ts";

/**
 * The verification keys of each trusted issuer, on this replica.
 *
 * - Static keys (an issuer's `static_jwks`) are used as stored, never fetched.
 * - Fetched keys (discovery, or a JWKS URL) are kept for at most `maxAgeMs`
 *   (COFFER_JWKS_MAX_AGE): a key the issuer removed stops verifying within
 *   that bound, since the next exchange after it fetches the set again.
 * - A JWT naming a key id the set lacks triggers one refresh (the issuer
 *   rotated), but at most one fetch per `refreshFloorMs`
 *   (COFFER_JWKS_REFRESH_FLOOR) per issuer: a flood of JWTs with made-up
 *   key ids costs the issuer one fetch per floor, whatever their number. A
 *   failed fetch is retried no sooner either. Concurrent refreshes of one
 *   issuer share one fetch.
 * - An issuer updated in place (UpdateTrustedIssuer): each entry remembers
 *   what it was built from (the static keys, or the key source and URLs),
 *   and every exchange reads the issuer's row, so a changed key source
 *   starts over at the next exchange on every replica, with no message and
 *   no wait. The replica that served the update also forgets the issuer
 *   (forget), so that even the same URL set again is fetched at once there.
 */

/** Defaults of COFFER_JWKS_MAX_AGE and COFFER_JWKS_REFRESH_FLOOR. */
export const DEFAULT_JWKS_MAX_AGE_MS = 10 * 60_000;
export const DEFAULT_JWKS_REFRESH_FLOOR_MS = 30_000;

/**
 * Most issuers whose keys are remembered; past it the least recently used
 * goes first. Entries are by issuer id: a deleted issuer's entry is never
 * used again (a new issuer gets a new id) and ages out.
 */
const MAX_ISSUERS = 1000;

export interface KeyCacheOptions {
  maxAgeMs?: number;
  refreshFloorMs?: number;
  /** For tests: the clock. */
  now?: () => number;
  /** Told when fetching an issuer's keys fails (the server logs it: the reason names no key material). */
  onFetchFailed?: (issuer: { id: string; issuerUrl: string }, reason: string) => void;
}

/** A key could not be found for a JWT: its reason is for the audit trail. */
export class KeyRefusal extends Error {
  override readonly name = "KeyRefusal";
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;

interface Entry {
  /** What the entry was built from; a different issuer row under the same id starts over. */
  fingerprint: string;
  keys?: LocalSet;
  fetchedAt: number;
  attemptedAt: number;
  lastError?: string;
  inflight?: Promise<void>;
}

export type GetKey = (
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey | Uint8Array>;

export class KeyCache {
  private readonly entries = new LRUCache<string, Entry>({ max: MAX_ISSUERS });
  private readonly statics = new LRUCache<string, { fingerprint: string; keys: LocalSet }>({
    max: MAX_ISSUERS,
  });
  private readonly maxAgeMs: number;
  private readonly floorMs: number;
  private readonly now: () => number;
  private readonly onFetchFailed: NonNullable<KeyCacheOptions["onFetchFailed"]>;
  /** JWKS documents fetched so far (for metrics and tests). */
  fetches = 0;

  constructor(options: KeyCacheOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS;
    this.floorMs = options.refreshFloorMs ?? DEFAULT_JWKS_REFRESH_FLOOR_MS;
    this.now = options.now ?? Date.now;
    this.onFetchFailed = options.onFetchFailed ?? (() => {});
  }

  /**
   * Drops what this replica holds for an issuer (it was updated): its next
   * exchange builds its static set again or fetches its keys, the floor
   * notwithstanding. Other replicas see the change by the row's key source
   * (the fingerprints below), at their next exchange.
   */
  forget(issuerId: string): void {
    this.entries.delete(issuerId);
    this.statics.delete(issuerId);
  }

  /** The key lookup jose's jwtVerify calls for a JWT of this issuer. */
  keysOf(issuer: TrustedIssuerRow): GetKey {
    if (issuer.keySource === "static") {
      const keys = this.staticSet(issuer);
      return async (header, token) => {
        try {
          return await keys(header, token);
        } catch (e) {
          throw refusalOf(e);
        }
      };
    }
    return (header, token) => this.fetched(issuer, header, token);
  }

  private staticSet(issuer: TrustedIssuerRow): LocalSet {
    const fingerprint = JSON.stringify(issuer.staticJwks);
    const cached = this.statics.get(issuer.id);
    if (cached !== undefined && cached.fingerprint === fingerprint) return cached.keys;
    let keys: LocalSet;
    try {
      keys = createLocalJWKSet(issuer.staticJwks as JSONWebKeySet);
    } catch {
      throw new KeyRefusal("the issuer's static keys are not a usable JWKS");
    }
    this.statics.set(issuer.id, { fingerprint, keys });
    return keys;
  }

  private entry(issuer: TrustedIssuerRow): Entry {
    const fingerprint = `${issuer.keySource} ${issuer.issuerUrl} ${issuer.jwksUrl ?? ""}`;
    let entry = this.entries.get(issuer.id);
    if (entry === undefined || entry.fingerprint !== fingerprint) {
      entry = { fingerprint, fetchedAt: 0, attemptedAt: Number.NEGATIVE_INFINITY };
      this.entries.set(issuer.id, entry);
    }
    return entry;
  }

  private async fetched(
    issuer: TrustedIssuerRow,
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<CryptoKey | Uint8Array> {
    const entry = this.entry(issuer);
    const stale = entry.keys === undefined || this.now() - entry.fetchedAt > this.maxAgeMs;
    if (stale) {
      // A set past its age is never used: a removed key must stop working.
      // Its refresh waits for the floor only after a failed fetch.
      const wait =
        entry.lastError === undefined ? Math.min(this.floorMs, this.maxAgeMs) : this.floorMs;
      await this.refresh(issuer, entry, wait);
    }
    const keys = entry.keys;
    if (keys === undefined)
      throw new KeyRefusal(`keys unavailable: ${entry.lastError ?? "not fetched"}`);
    try {
      return await keys(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey) || stale) throw refusalOf(e);
    }
    // An unknown key id: the issuer may have rotated. Once per floor.
    if (entry.inflight === undefined && this.now() - entry.attemptedAt < this.floorMs) {
      throw new KeyRefusal("unknown key id");
    }
    await this.refresh(issuer, entry, this.floorMs);
    const fresh = entry.keys;
    if (fresh === undefined)
      throw new KeyRefusal(`keys unavailable: ${entry.lastError ?? "not fetched"}`);
    try {
      return await fresh(header, token);
    } catch (e) {
      throw refusalOf(e);
    }
  }

  /** Fetches the issuer's keys, unless a fetch is in flight (shared) or the last began within `floorMs`. */
  private async refresh(issuer: TrustedIssuerRow, entry: Entry, floorMs: number): Promise<void> {
    if (entry.inflight !== undefined) return entry.inflight;
    if (this.now() - entry.attemptedAt < floorMs) {
      if (entry.keys === undefined || this.now() - entry.fetchedAt > this.maxAgeMs) {
        throw new KeyRefusal(`keys unavailable: ${entry.lastError ?? "refresh too soon"}`);
      }
      return;
    }
    entry.attemptedAt = this.now();
    entry.inflight = this.load(issuer)
      .then(
        (keys) => {
          entry.keys = keys;
          entry.fetchedAt = this.now();
          delete entry.lastError;
        },
        (e: unknown) => {
          // A stale set is dropped, not kept: past its age it must not verify.
          if (this.now() - entry.fetchedAt > this.maxAgeMs) delete entry.keys;
          entry.lastError = e instanceof FetchFailed ? e.message : "key fetch failed";
          this.onFetchFailed(issuer, entry.lastError);
        },
      )
      .finally(() => {
        delete entry.inflight;
      });
    return entry.inflight;
  }

  private async load(issuer: TrustedIssuerRow): Promise<LocalSet> {
    let jwksUrl = issuer.jwksUrl;
    if (issuer.keySource === "discovery") {
      const base = issuer.issuerUrl.replace(/\/+$/, "");
      const doc = await fetchJson(`${base}/.well-known/openid-configuration`);
      const named = (doc as { jwks_uri?: unknown; issuer?: unknown } | null) ?? {};
      if (named.issuer !== issuer.issuerUrl) {
        throw new FetchFailed("the discovery document names another issuer");
      }
      if (typeof named.jwks_uri !== "string") {
        throw new FetchFailed("the discovery document has no jwks_uri");
      }
      jwksUrl = named.jwks_uri;
    }
    if (jwksUrl === null) throw new FetchFailed("no JWKS URL");
    this.fetches += 1;
    const jwks = await fetchJson(jwksUrl);
    try {
      return createLocalJWKSet(jwks as JSONWebKeySet);
    } catch {
      throw new FetchFailed("the key document is not a JWKS");
    }
  }
}

/** jose's key-selection errors as the audit trail's reasons. */
function refusalOf(e: unknown): Error {
  if (e instanceof KeyRefusal) return e;
  if (e instanceof errors.JWKSNoMatchingKey) return new KeyRefusal("unknown key id");
  if (e instanceof errors.JWKSMultipleMatchingKeys) return e;
  return e instanceof Error ? e : new KeyRefusal("no usable key");
}
