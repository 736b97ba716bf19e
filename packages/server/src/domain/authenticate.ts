import { displayPrefix, hashToken, isWellFormedToken } from "../crypto/tokens.ts";
import type { Db } from "../db/client.ts";
import { findTokenByHash } from "../db/tokens.ts";
import type { Grant, Principal, Role } from "./authz.ts";
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

/** Most refused hashes remembered; past it the oldest goes first. */
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
  private readonly cache = new Map<string, { principal: Principal; until: number }>();
  /** Lookups in flight, by hash: concurrent callers with one token share one query. */
  private readonly pending = new Map<string, Promise<Principal>>();
  /**
   * Hashes (base64) of tokens the database refused, with when to ask again,
   * oldest first: a flood of one bad token costs one lookup per
   * REFUSED_CACHE_MS. (A flood of distinct random tokens is the pre-auth
   * rate limit's to stop: no cache can help there.)
   */
  private readonly refusedUntil = new Map<string, number>();
  /**
   * Bumped by forget() and learnCreated(): a lookup that started before a
   * revocation or a creation must not cache its answer.
   */
  private generation = 0;
  /** Database lookups made so far (for metrics and tests). */
  lookups = 0;

  private readonly maxRefused: number;

  constructor(
    private readonly home: () => Db,
    options: { maxRefused?: number } = {},
  ) {
    this.maxRefused = options.maxRefused ?? MAX_REFUSED;
  }

  /**
   * The principal of a header whose token this replica verified in the last
   * moments, with no I/O; undefined when it would take a lookup (or fail).
   */
  cached(header: string | null): Principal | undefined {
    const value = bearer(header);
    if (value === undefined || !isWellFormedToken(value)) return undefined;
    const cached = this.cache.get(keyOf(hashToken(value)));
    return cached !== undefined && cached.until > Date.now() ? cached.principal : undefined;
  }

  /**
   * Whether this replica has verified the header's token before, even if
   * that answer has lapsed and needs a fresh lookup, and it has not been
   * refused or revoked since: such a caller is not charged to its address's
   * pre-auth limit, so a flood from a shared address (NAT) does not starve
   * the valid clients behind it. A token refused once loses this at once.
   */
  known(header: string | null): boolean {
    const value = bearer(header);
    return (
      value !== undefined && isWellFormedToken(value) && this.cache.has(keyOf(hashToken(value)))
    );
  }

  async authenticate(header: string | null): Promise<Principal> {
    const value = bearer(header);
    if (value === undefined || !isWellFormedToken(value)) throw refused();
    const hash = hashToken(value);
    const key = keyOf(hash);
    const now = Date.now();
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.until > now) return cached.principal;
    const refusedUntil = this.refusedUntil.get(key);
    if (refusedUntil !== undefined) {
      if (refusedUntil > now) throw refused();
      this.refusedUntil.delete(key);
    }
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
      this.cache.delete(key);
      if (generation === this.generation) this.rememberRefused(key, now);
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
    const until = Math.min(now + CACHE_MS, row.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY);
    this.cache.set(key, { principal, until });
    if (this.cache.size > 10_000) this.cache.clear();
    return principal;
  }

  /** Forgets tokens at once on this replica (after their revocation, here or on another replica). */
  forget(tokenIds: readonly string[]): void {
    this.generation += 1;
    const doomed = new Set(tokenIds);
    for (const [key, entry] of this.cache) {
      if (doomed.has(entry.principal.tokenId)) this.cache.delete(key);
    }
  }

  /** Forgets every token: revocations may have been missed (the LISTEN connection dropped). */
  forgetAll(): void {
    this.generation += 1;
    this.cache.clear();
    this.refusedUntil.clear();
  }

  /** A token was just created on this replica: it must not stay refused. */
  learnCreated(value: string): void {
    this.generation += 1;
    this.refusedUntil.delete(keyOf(hashToken(value)));
  }

  private rememberRefused(key: string, now: number): void {
    this.refusedUntil.delete(key);
    // Oldest first: drop what has lapsed, then, at the cap, the oldest.
    for (const [k, until] of this.refusedUntil) {
      if (until > now && this.refusedUntil.size < this.maxRefused) break;
      this.refusedUntil.delete(k);
    }
    this.refusedUntil.set(key, now + REFUSED_CACHE_MS);
  }

  /** How many refused hashes are remembered (for tests). */
  get refusedSize(): number {
    return this.refusedUntil.size;
  }
}

function bearer(header: string | null): string | undefined {
  return header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
}

function keyOf(hash: Uint8Array): string {
  return Buffer.from(hash).toString("base64");
}

/**
 * The display prefix (`coffer_` and 4 characters) of the token a header
 * presents, when it is a well-formed Coffer token; undefined otherwise. Only
 * a well-formed token's prefix is ever recorded: the start of a malformed
 * header may be anything, a password pasted by mistake included.
 */
export function presentedPrefix(header: string | null): string | undefined {
  const value = bearer(header);
  return value !== undefined && isWellFormedToken(value) ? displayPrefix(value) : undefined;
}

function refused() {
  return unauthenticated(
    'a valid token is required: send "authorization: Bearer <token>" with a token that is neither revoked nor expired',
  );
}
