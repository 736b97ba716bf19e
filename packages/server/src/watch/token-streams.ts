import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import type { Database } from "../db/client.ts";
import { unusableTokens } from "../db/tokens.ts";
import { resourceExhausted, unauthenticated } from "../domain/errors.ts";

/**
 * The channel, in the home region's database (where tokens live), on which
 * a replica that revoked tokens tells the others. The payload is the
 * revoked ids, comma-separated.
 */
export const TOKEN_CHANNEL = "coffer_tokens_revoked";

/**
 * A safety net under LISTEN: this often, the tokens of this replica's open
 * streams are checked in the database, so a lost notification (a replica
 * that died between its commit and its NOTIFY) costs at most this much.
 */
export const TOKEN_SWEEP_MS = 5_000;

/** pg_notify payloads must stay under 8000 bytes: 150 ids of 37 bytes each. */
const IDS_PER_NOTIFY = 150;

/**
 * How long a revoked id is remembered, to refuse a stream whose call was
 * authenticated just before the revocation arrived and that registers just
 * after. Well above the time between the two.
 */
const RECENT_MS = 60_000;

/** A stream held by a token: it can be ended from outside. */
export interface TokenBound {
  /** Ends the stream with this error (its next message is the error). */
  end(reason: Error): void;
}

/** The authenticator's cache, as far as revocations touch it. */
export interface TokenCache {
  forget(tokenIds: readonly string[]): void;
  forgetAll(): void;
}

/** The error a stream ends with when its token is revoked or expires. */
export function tokenEnded(): Error {
  return unauthenticated(
    "this stream's token was revoked or has expired: a valid token is required to watch",
  );
}

export interface TokenStreamsOptions {
  /** Open streams one token may hold on this replica. */
  maxPerToken: number;
  cache: TokenCache;
  logger: Logger;
  sweepMs?: number;
}

/**
 * This replica's open watch streams, by token: it caps how many one token
 * holds, and ends them when the token is revoked (here, or on another
 * replica, which NOTIFYs) or found unusable by the safety sweep. Revocation
 * also reaches the authenticator's cache here, so that on every replica a
 * revoked token stops working for calls and streams at the same moment.
 */
export class TokenStreams {
  private readonly byToken = new Map<string, Set<TokenBound>>();
  /** Streams registered and not yet released (a revoked token's too, until they end). */
  private open = 0;
  private readonly recent = new Map<string, number>();
  private unlisten: (() => Promise<void>) | undefined;
  private readonly sweepTimer: NodeJS.Timeout;
  private sweeping = false;
  private closed = false;

  private constructor(
    private readonly home: Database,
    private readonly options: TokenStreamsOptions,
  ) {
    this.sweepTimer = setInterval(() => void this.sweep(), options.sweepMs ?? TOKEN_SWEEP_MS);
    this.sweepTimer.unref();
  }

  static async start(home: Database, options: TokenStreamsOptions): Promise<TokenStreams> {
    const streams = new TokenStreams(home, options);
    let listening = false;
    streams.unlisten = await home.listen(
      TOKEN_CHANNEL,
      (payload) => streams.apply(payload.split(",").filter((id) => id !== "")),
      () => {
        // Reconnected: revocations may have been missed meanwhile.
        if (listening) {
          options.cache.forgetAll();
          void streams.sweep();
        }
        listening = true;
      },
    );
    return streams;
  }

  /** Open streams held by this token on this replica. */
  count(tokenId: string): number {
    return this.byToken.get(tokenId)?.size ?? 0;
  }

  /** Open streams on this replica, catching up or live. */
  get total(): number {
    return this.open;
  }

  /**
   * Registers a stream about to open: RESOURCE_EXHAUSTED past the cap,
   * UNAUTHENTICATED when its token was revoked after its call was
   * authenticated. Every registered stream must be released.
   */
  register(tokenId: string, stream: TokenBound): void {
    if (this.recent.has(tokenId)) throw tokenEnded();
    let set = this.byToken.get(tokenId);
    const max = this.options.maxPerToken;
    if ((set?.size ?? 0) >= max) {
      throw resourceExhausted(
        `this token already holds ${max} open watch streams on this server (COFFER_WATCH_STREAMS_PER_TOKEN); close one, or watch several secrets with one stream's selectors`,
      );
    }
    if (set === undefined) {
      set = new Set();
      this.byToken.set(tokenId, set);
    }
    set.add(stream);
    this.open += 1;
  }

  /** Once per registered stream, when it ends. */
  release(tokenId: string, stream: TokenBound): void {
    this.open -= 1;
    const set = this.byToken.get(tokenId);
    if (set === undefined) return;
    set.delete(stream);
    if (set.size === 0) this.byToken.delete(tokenId);
  }

  /**
   * The hook a revocation calls after it commits, with every token it
   * revoked: ends their streams and drops them from the authenticator's
   * cache here at once, then NOTIFYs the other replicas, which do the same.
   */
  revoked(tokenIds: readonly string[]): void {
    if (tokenIds.length === 0) return;
    this.apply(tokenIds);
    for (let i = 0; i < tokenIds.length; i += IDS_PER_NOTIFY) {
      const payload = tokenIds.slice(i, i + IDS_PER_NOTIFY).join(",");
      void this.home.db
        .execute(sql`select pg_notify(${TOKEN_CHANNEL}, ${payload})`)
        .catch((err: unknown) =>
          this.options.logger.warn(
            { err },
            "could not NOTIFY other replicas of a revocation; their token sweep will",
          ),
        );
    }
  }

  /** Stops listening; open streams are ended by their feeds. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweepTimer);
    await this.unlisten?.().catch(() => {});
  }

  private apply(tokenIds: readonly string[]): void {
    this.options.cache.forget(tokenIds);
    const now = Date.now();
    for (const [id, at] of this.recent) {
      if (at > now - RECENT_MS) break;
      this.recent.delete(id);
    }
    for (const id of tokenIds) {
      this.recent.delete(id);
      this.recent.set(id, now);
      const set = this.byToken.get(id);
      if (set === undefined) continue;
      this.byToken.delete(id);
      const reason = tokenEnded();
      for (const s of set) s.end(reason);
    }
  }

  /** Ends the streams of tokens the database says are no longer usable. */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.closed || this.byToken.size === 0) return;
    this.sweeping = true;
    try {
      const ids = [...this.byToken.keys()];
      const unusable: string[] = [];
      for (let i = 0; i < ids.length; i += 1000) {
        unusable.push(...(await unusableTokens(this.home.db, ids.slice(i, i + 1000))));
      }
      if (unusable.length > 0) this.apply(unusable);
    } catch (err) {
      this.options.logger.warn({ err }, "could not check the tokens of open watch streams");
    } finally {
      this.sweeping = false;
    }
  }
}
