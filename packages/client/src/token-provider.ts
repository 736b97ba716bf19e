import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { AuthService } from "@coffer/api";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { TokenExchangeError } from "./errors.ts";

/**
 * Where a client's bearer token comes from: a function asked before every
 * call (and every watch connection), which answers quickly when it caches.
 */
export type TokenProvider = () => string | Promise<string>;

/**
 * A {@link TokenProvider} that can be told a token was refused: the client
 * then renews it and sends a call that is safe to repeat once more.
 */
export interface RenewableTokenProvider extends TokenProvider {
  /** The server refused `token` (UNAUTHENTICATED): the next call renews unless it already did. */
  invalidate(token: string): void;
}

/** One renewal, as {@link JwtTokenProvider.onRenew} reports it. Never the token's value. */
export interface TokenRenewal {
  /** The new Coffer token's id (not secret: it is what `coffer token list` shows). */
  tokenId: string;
  /** When it expires, on this machine's clock. */
  expiresAt: Date;
  /** When the provider renews it next, on this machine's clock. */
  renewAt: Date;
}

/** Options of the JWT exchange that the Node and browser entries share. */
export interface JwtExchangeOptions {
  /**
   * The Coffer token's life to ask for, in milliseconds. The server grants
   * at most the binding's `token_ttl`, one hour, and the JWT's own expiry.
   * Unset: the binding's `token_ttl`.
   */
  ttlMs?: number;
  /**
   * Renew this long before the token expires. Unset: once two thirds of its
   * life have passed (a 15 min token is renewed after 10 min).
   */
  renewBeforeMs?: number;
  /** Deadline of each exchange, in milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Called after each exchange; see {@link JwtTokenProvider.onRenew}. */
  onRenew?: (renewal: TokenRenewal) => void;
}

/** What {@link exchangingProvider} needs: where the JWT and the server are. */
export interface ExchangeSource extends JwtExchangeOptions {
  /**
   * The transport to reach AuthService on. It must not add an
   * authorization header of its own: an exchange is the one call made
   * without a Coffer token.
   */
  transport: Transport;
  /** Reads the current JWT; asked at each exchange, since platforms rotate it. */
  jwt: () => string | Promise<string>;
  /** Where the JWT comes from, for errors: `the JWT file /var/run/...`, `the jwt function`. */
  jwtSource: string;
  /** What to check when the JWT cannot be read (the file's hint differs from a function's). */
  readHint?: string;
}

/**
 * A token provider that exchanges a platform's JWT (a Kubernetes projected
 * service-account token, a GitHub Actions OIDC token) for a short-lived
 * Coffer token through `AuthService.ExchangeToken`, caches it, and renews it
 * before it expires.
 *
 * Call it for the current token: concurrent callers share one exchange.
 * Once the renewal time has passed (two thirds of the token's life), the
 * next call starts one renewal in the background and still answers with the
 * current token; only a call that finds the token expired (or none yet)
 * waits for the exchange. An exchange that fails throws a
 * {@link TokenExchangeError} that names the JWT's source and what to check,
 * never the JWT or a token.
 */
export interface JwtTokenProvider extends RenewableTokenProvider {
  (): Promise<string>;
  /** When the current token expires, on this machine's clock; undefined before the first exchange. */
  readonly expiresAt: Date | undefined;
  /** When the current token is due for renewal, on this machine's clock. */
  readonly renewAt: Date | undefined;
  /** Exchanges now (sharing an exchange in flight) and returns the new token. */
  renew(): Promise<string>;
  /** Calls `listener` after each exchange; returns the function that removes it. */
  onRenew(listener: (renewal: TokenRenewal) => void): () => void;
}

/** A background renewal that failed is tried again after this long, not on every call. */
const RENEW_RETRY_MS = 1_000;

interface Current {
  value: string;
  tokenId: string;
  expiresAt: number;
  renewAt: number;
}

/**
 * The exchanging provider over any transport and JWT source; the Node and
 * browser entries' `jwtTokenProvider` build the transport and the source.
 */
export function exchangingProvider(source: ExchangeSource): JwtTokenProvider {
  const auth = createClient(AuthService, source.transport);
  const listeners = new Set<(r: TokenRenewal) => void>();
  if (source.onRenew !== undefined) listeners.add(source.onRenew);
  let current: Current | undefined;
  let pending: Promise<Current> | undefined;
  let retryAfter = 0;

  const exchange = (): Promise<Current> => {
    pending ??= (async () => {
      try {
        const next = await exchangeOnce(auth, source);
        current = next;
        retryAfter = 0;
        const renewal = {
          tokenId: next.tokenId,
          expiresAt: new Date(next.expiresAt),
          renewAt: new Date(next.renewAt),
        };
        for (const listener of listeners) {
          try {
            listener(renewal);
          } catch (err) {
            // A listener's bug is not a failed exchange: it surfaces as an
            // uncaught error, and the token is still served.
            queueMicrotask(() => {
              throw err;
            });
          }
        }
        return next;
      } catch (err) {
        retryAfter = Date.now() + RENEW_RETRY_MS;
        throw err;
      } finally {
        pending = undefined;
      }
    })();
    return pending;
  };

  const provider = async (): Promise<string> => {
    const now = Date.now();
    if (current !== undefined && now < current.expiresAt) {
      if (now >= current.renewAt && pending === undefined && now >= retryAfter) {
        // Still good: this call goes on with it, the renewal runs beside it
        // (its failure is thrown to the first call that needs the new token).
        exchange().catch(() => {});
      }
      return current.value;
    }
    return (await exchange()).value;
  };
  return Object.defineProperties(provider, {
    expiresAt: { get: () => (current === undefined ? undefined : new Date(current.expiresAt)) },
    renewAt: { get: () => (current === undefined ? undefined : new Date(current.renewAt)) },
    renew: { value: async () => (await exchange()).value },
    invalidate: {
      value: (token: string) => {
        if (current?.value === token) current = undefined;
      },
    },
    onRenew: {
      value: (listener: (r: TokenRenewal) => void) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
  }) as JwtTokenProvider;
}

async function exchangeOnce(
  auth: ReturnType<typeof createClient<typeof AuthService>>,
  source: ExchangeSource,
): Promise<Current> {
  let jwt: string;
  try {
    jwt = (await source.jwt()).trim();
  } catch (err) {
    const why = (err as { code?: string }).code ?? (err as Error).message;
    throw new TokenExchangeError(
      `cannot read ${source.jwtSource} (${why})${source.readHint ? `: ${source.readHint}` : ""}`,
      Code.Unauthenticated,
    );
  }
  if (jwt === "") {
    throw new TokenExchangeError(
      `${source.jwtSource} is empty${source.readHint ? `: ${source.readHint}` : ""}`,
      Code.Unauthenticated,
    );
  }
  // Measured from before the request: the local expiry is then never later
  // than the server's, whatever the two clocks say.
  const started = Date.now();
  let res: Awaited<ReturnType<typeof auth.exchangeToken>>;
  try {
    res = await auth.exchangeToken(
      { jwt, ...(source.ttlMs !== undefined && { ttl: durationFromMs(source.ttlMs) }) },
      { timeoutMs: source.timeoutMs ?? 30_000 },
    );
  } catch (err) {
    throw refusal(ConnectError.from(err), source.jwtSource);
  }
  const token = res.token;
  if (res.value === "" || token?.expiresAt === undefined || token.createdAt === undefined) {
    throw new TokenExchangeError(
      "the server's ExchangeToken answer has no token or no expiry",
      Code.Internal,
    );
  }
  // The token's life by the server's clock, placed on ours.
  const lifeMs = Math.max(0, timestampMs(token.expiresAt) - timestampMs(token.createdAt));
  const expiresAt = started + lifeMs;
  const before =
    source.renewBeforeMs === undefined
      ? lifeMs / 3
      : Math.min(Math.max(0, source.renewBeforeMs), lifeMs);
  return { value: res.value, tokenId: token.id, expiresAt, renewAt: expiresAt - before };
}

/** The exchange's failure, saying what to check; the server's message never holds the JWT. */
function refusal(err: ConnectError, jwtSource: string): TokenExchangeError {
  const where = `exchanging ${jwtSource} for a Coffer token`;
  switch (err.code) {
    case Code.Unauthenticated:
      return new TokenExchangeError(
        `${where}: the server does not accept this JWT. Check that it is current, that its ` +
          "issuer is a trusted issuer with its audience, and that an identity binding matches " +
          "its claims; an admin finds the precise reason in the audit trail (method ExchangeToken)",
        Code.Unauthenticated,
      );
    case Code.Unimplemented:
      return new TokenExchangeError(
        `${where}: this server does not offer AuthService.ExchangeToken (an older Coffer, or not the gRPC/Connect port)`,
        Code.Unimplemented,
      );
    default:
      return new TokenExchangeError(
        `${where}: ${err.rawMessage}`,
        err.code,
        undefined,
        undefined,
        err,
      );
  }
}
