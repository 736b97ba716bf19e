import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import {
  canonicalToken,
  displayPrefix,
  hashToken,
  isScalewaySecretKey,
  isWellFormedToken,
} from "../crypto/tokens.ts";
import type { Db } from "../db/client.ts";
import { findTokenByHash } from "../db/tokens.ts";
import type { Grant, Principal, Role } from "./caller.ts";
import { unauthenticated } from "./errors.ts";

/** How long a verified token is trusted without asking the database again. */
const CACHE_MS = 2_000;

/**
 * How long a refused token (unknown, revoked, expired) is refused without
 * asking the database again. Revoked and expired are final; only an unknown
 * token can become valid, when it is created, and creation on this replica
 * clears its entry (learnCreated). A token created on another replica is
 * refused here for at most this long, and only if its value was presented
 * here in the moments before it existed: a new token's value is random, so
 * in practice only a value fixed in advance (COFFER_BOOTSTRAP_TOKEN) can be.
 */
export const REFUSED_CACHE_MS = 5_000;

/** Most verified tokens remembered; past it the least recently used goes first. */
const MAX_VERIFIED = 10_000;

/** Most refused hashes remembered; past it the least recently used goes first. */
const MAX_REFUSED = 10_000;

/**
 * Turns an `authorization` header into the principal it names. Tokens live
 * in the home region's database; a verified token is cached briefly by hash
 * (never by value) so that hot paths do not pay a lookup per call, and the
 * cache entry is dropped at once when this replica revokes the token. Every
 * failure is the same UNAUTHENTICATED, so a caller cannot tell a revoked
 * token from an unknown one.
 */
export class Authenticator {
  /**
   * Verified tokens by hash (base64), served until `until`. A lapsed entry
   * stays, on purpose, until the token is refused or revoked or the entry
   * is evicted: known() answers from it. So the TTL is kept here rather than
   * by lru-cache, which hides lapsed entries from its iterators and forget()
   * must reach them.
   */
  private readonly verified: LRUCache<string, { principal: Principal; until: number }>;
  /**
   * Lookups in flight, by hash: concurrent callers with one token share one
   * query. Not lru-cache's fetch(): it stores the answer a few microtasks
   * after the lookup returns, too late for a revocation in between to stop
   * it (see `generation`), and it rejects every waiter when the key is
   * deleted mid-lookup.
   */
  private readonly pending = new Map<string, Promise<Principal>>();
  /**
   * Hashes (base64) of tokens the database refused, each for
   * REFUSED_CACHE_MS: a flood of one bad token costs one lookup per
   * REFUSED_CACHE_MS. (A flood of distinct random tokens is the pre-auth
   * rate limit's to stop: no cache can help there.)
   */
  private readonly refused: LRUCache<string, true>;
  /**
   * Bumped by forget() and learnCreated(): a lookup that started before a
   * revocation or a creation must not cache its answer.
   */
  private generation = 0;
  /** Database lookups made so far (for metrics and tests). */
  lookups = 0;

  private readonly verifiedMs: number;

  /** The options are for tests; the defaults are the constants above. */
  constructor(
    private readonly home: () => Db,
    options: {
      verifiedMs?: number;
      refusedMs?: number;
      maxVerified?: number;
      maxRefused?: number;
    } = {},
  ) {
    this.verifiedMs = options.verifiedMs ?? CACHE_MS;
    this.verified = new LRUCache({ max: options.maxVerified ?? MAX_VERIFIED });
    this.refused = new LRUCache({
      max: options.maxRefused ?? MAX_REFUSED,
      ttl: options.refusedMs ?? REFUSED_CACHE_MS,
    });
  }

  /**
   * The principal of a header whose token this replica verified in the last
   * moments, with no I/O; undefined when it would take a lookup (or fail).
   */
  cached(header: string | null): Principal | undefined {
    const value = bearer(header);
    if (value === undefined) return undefined;
    // The token as presented first: only canonical values are ever cached,
    // so a hit is one (its hash is a verified token's), and the well-formed
    // check and the checksum are spared on every call of a busy client
    // (with the hashing, a tenth of a gRPC access's own CPU: profile of
    // 2026-12-05). A miss may still be a secret key in capitals.
    let verified = this.verified.get(keyOfValue(value));
    if (verified === undefined) {
      const canonical = canonicalToken(value);
      if (canonical === undefined || canonical === value) return undefined;
      verified = this.verified.get(keyOfValue(canonical));
    }
    return verified !== undefined && verified.until > Date.now() ? verified.principal : undefined;
  }

  /**
   * Whether a call with this header costs no lookup of its own, and so is
   * not charged to its address's pre-auth limit: this replica has verified
   * its token before, even if that answer has lapsed and needs a fresh
   * lookup, and has not refused or revoked it since (so a flood from a
   * shared address, NAT, does not starve the valid clients behind it); or
   * the token's lookup is in flight, which the call joins (so a client's
   * first calls with a new token, made at once, are not refused past the
   * burst while the first of them is being verified: each joiner costs what
   * a refusal would, and is refused with the rest if the token is). A token
   * refused once loses this at once.
   */
  known(header: string | null): boolean {
    const value = presented(header);
    if (value === undefined) return false;
    const key = keyOf(hashToken(value));
    return this.verified.has(key) || this.pending.has(key);
  }

  async authenticate(header: string | null): Promise<Principal> {
    const value = presented(header);
    if (value === undefined) throw refused();
    const hash = hashToken(value);
    const key = keyOf(hash);
    const verified = this.verified.get(key);
    if (verified !== undefined && verified.until > Date.now()) return verified.principal;
    if (this.refused.get(key)) throw refused();
    let lookup = this.pending.get(key);
    if (lookup === undefined) {
      lookup = this.lookUp(key, hash).finally(() => this.pending.delete(key));
      this.pending.set(key, lookup);
    }
    return lookup;
  }

  private async lookUp(key: string, hash: Uint8Array): Promise<Principal> {
    const generation = this.generation;
    this.lookups += 1;
    const row = await findTokenByHash(this.home(), hash);
    const now = Date.now();
    if (
      row === undefined ||
      row.revokedAt !== null ||
      (row.expiresAt !== null && row.expiresAt.getTime() <= now)
    ) {
      this.verified.delete(key);
      if (generation === this.generation) this.refused.set(key, true);
      throw refused();
    }
    const principal: Principal = {
      tokenId: row.id,
      grants: row.grants.map(
        (g): Grant => ({
          projectId: g.projectId,
          role: g.role as Role,
          pathPrefix: g.pathPrefix,
        }),
      ),
      ...(row.expiresAt !== null && { expiresAt: row.expiresAt }),
    };
    if (generation !== this.generation) return principal;
    const until = Math.min(
      now + this.verifiedMs,
      row.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY,
    );
    this.verified.set(key, { principal, until });
    return principal;
  }

  /** Forgets tokens at once on this replica (after their revocation, here or on another replica). */
  forget(tokenIds: readonly string[]): void {
    this.generation += 1;
    const doomed = new Set(tokenIds);
    const keys: string[] = [];
    for (const [key, entry] of this.verified.entries()) {
      if (doomed.has(entry.principal.tokenId)) keys.push(key);
    }
    for (const key of keys) this.verified.delete(key);
  }

  /** Forgets every token: revocations may have been missed (the LISTEN connection dropped). */
  forgetAll(): void {
    this.generation += 1;
    this.verified.clear();
    this.refused.clear();
  }

  /** A token was just created on this replica: it must not stay refused. */
  learnCreated(value: string): void {
    this.generation += 1;
    this.refused.delete(keyOf(hashToken(canonicalToken(value) ?? value)));
  }

  /** How many verified tokens are remembered, lapsed ones included (for tests). */
  get verifiedSize(): number {
    return this.verified.size;
  }

  /** How many refused hashes are remembered (for tests). */
  get refusedSize(): number {
    return this.refused.size;
  }
}

/** The token of an `authorization: Bearer <token>` header; undefined for any other header. */
export function bearer(header: string | null | undefined): string | undefined {
  return header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
}

/**
 * The canonical value of the token a header presents (a Coffer token, or a
 * Scaleway-style secret key in lower case), or undefined when it presents
 * nothing shaped like a token: that is refused without a lookup.
 */
function presented(header: string | null): string | undefined {
  const value = bearer(header);
  return value === undefined ? undefined : canonicalToken(value);
}

function keyOf(hash: Uint8Array): string {
  return Buffer.from(hash).toString("base64");
}

/** keyOf(hashToken(value)), in one call and without the copies. */
function keyOfValue(value: string): string {
  return hash("sha256", value, "base64");
}

/** What presentedPrefix records for a Scaleway-style secret key: none of its characters. */
export const SECRET_KEY_MARKER = "uuid";

/**
 * The display prefix (`coffer_` and 4 characters) of the token a header
 * presents, when it is a well-formed Coffer token; SECRET_KEY_MARKER for a
 * Scaleway-style secret key (a UUID: every character of it is secret, and
 * its access key id is not presented); undefined otherwise. Only a
 * well-formed token's prefix is ever recorded: the start of a malformed
 * header may be anything, a password pasted by mistake included.
 */
export function presentedPrefix(header: string | null): string | undefined {
  const value = bearer(header);
  if (value === undefined) return undefined;
  if (isWellFormedToken(value)) return displayPrefix(value);
  return isScalewaySecretKey(value) ? SECRET_KEY_MARKER : undefined;
}

function refused() {
  return unauthenticated(
    'a valid token is required: send "authorization: Bearer <token>" with a token that is neither revoked nor expired',
  );
}
