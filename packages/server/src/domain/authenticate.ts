import { hashToken, isWellFormedToken } from "../crypto/tokens.ts";
import type { Db } from "../db/client.ts";
import { findTokenByHash } from "../db/tokens.ts";
import type { Grant, Principal, Role } from "./authz.ts";
import { unauthenticated } from "./errors.ts";

/** How long a verified token is trusted without asking the database again. */
const CACHE_MS = 2_000;

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
  /** Bumped by forget(): a lookup that started before a revocation must not cache its answer. */
  private generation = 0;

  constructor(private readonly home: () => Db) {}

  async authenticate(header: string | null): Promise<Principal> {
    const value = header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
    if (value === undefined || !isWellFormedToken(value)) throw refused();
    const hash = hashToken(value);
    const key = Buffer.from(hash).toString("base64");
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.until > Date.now()) return cached.principal;
    let lookup = this.pending.get(key);
    if (lookup === undefined) {
      lookup = this.lookUp(key, hash).finally(() => this.pending.delete(key));
      this.pending.set(key, lookup);
    }
    return lookup;
  }

  private async lookUp(key: string, hash: Uint8Array): Promise<Principal> {
    const generation = this.generation;
    const row = await findTokenByHash(this.home(), hash);
    const now = Date.now();
    if (row === undefined || row.revokedAt !== null) throw refused();
    if (row.expiresAt !== null && row.expiresAt.getTime() <= now) throw refused();
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
  }
}

function refused() {
  return unauthenticated(
    'a valid token is required: send "authorization: Bearer <token>" with a token that is neither revoked nor expired',
  );
}
