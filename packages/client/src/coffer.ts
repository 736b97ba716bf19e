import type { SecretType } from "@coffer/api";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type AccessOptions, accessSecret, type SecretRef } from "./access.ts";
import { verifyChecksums } from "./checksum.ts";
import type { CofferClient } from "./client.ts";
import { isRetrySafe, type RetryOptions, retryInterceptor } from "./retry.ts";
import type { SecretValue } from "./secret-value.ts";
import type { RenewableTokenProvider, TokenProvider } from "./token-provider.ts";
import { type SecretWatch, type WatchOptions, watchSecrets } from "./watch.ts";

/** The options that Node and browser clients share. */
export interface CofferCommonOptions {
  /**
   * Bearer token sent as `authorization: Bearer <token>` on every call: a
   * string, or a {@link TokenProvider} asked before each call and each watch
   * connection (such as {@link jwtTokenProvider}, which exchanges a
   * platform's JWT and renews the token before it expires).
   */
  token?: string | TokenProvider;
  /** Deadline of every unary call, in milliseconds, retries included; watches have none. */
  timeoutMs?: number;
  /**
   * Extra interceptors. They run inside the checksum check (so a payload is
   * verified after them) and around the client's own: the token, the
   * retries.
   */
  interceptors?: Interceptor[];
  /**
   * Retries of idempotent calls on UNAVAILABLE (see {@link isRetrySafe}).
   * `true` for the defaults, options to tune them, `false` for none. Off by
   * default for `createCofferClient` and `createCofferTransport`, on by
   * default for `createCoffer`.
   */
  retry?: boolean | RetryOptions;
}

/** Defaults of the helpers of {@link Coffer}. */
export interface CofferDefaults {
  /** The project of paths and watches, unless a call names another. */
  projectId?: string;
  /** The region of every helper call, unless a call names another; unset: the server's default. */
  region?: string;
}

/** A client with the helpers services want. */
export interface Coffer {
  /** The plain typed client of every SecretService RPC (with the same transport and retries). */
  readonly rpc: CofferClient;
  /**
   * Reads a secret's payload by location (`"/prod/db"`) or id, checksum
   * verified. A single-access version is refused unless
   * `consumeSingleAccess` is set. See {@link accessSecret}.
   *
   * @example
   * const db = await coffer.access("/prod/db", { type: SecretType.DATABASE_CREDENTIALS });
   * const { host, port, username, password } = db.json();
   */
  access<T extends SecretType = SecretType>(
    ref: SecretRef,
    options?: AccessOptions<T>,
  ): Promise<SecretValue<T>>;
  /**
   * Follows changes as an async iterable that resumes from its cursor after
   * a reconnection. See {@link SecretWatch}.
   *
   * @example
   * for await (const event of coffer.watch({ selectors: [{ pathPrefix: "/prod" }] })) { ... }
   */
  watch(options?: WatchOptions): SecretWatch;
}

/** The helpers of {@link Coffer} over a client that already exists. */
export function cofferOver(rpc: CofferClient, defaults: CofferDefaults = {}): Coffer {
  // A call's own project or region wins; an explicit undefined does not erase the default.
  const withDefaults = <O extends { projectId?: string; region?: string }>(options: O): O => {
    const projectId = options.projectId ?? defaults.projectId;
    const region = options.region ?? defaults.region;
    return {
      ...options,
      ...(projectId !== undefined && { projectId }),
      ...(region !== undefined && { region }),
    };
  };
  return {
    rpc,
    access: (ref, options = {}) => accessSecret(rpc, ref, withDefaults(options)),
    watch: (options = {}) => watchSecrets(rpc, withDefaults(options)),
  };
}

/**
 * The interceptors every Coffer transport has, outermost first: the
 * checksum check of access answers, the caller's own, the token, and the
 * retries when asked for.
 */
export function cofferInterceptors(options: CofferCommonOptions): Interceptor[] {
  const interceptors: Interceptor[] = [verifyChecksums, ...(options.interceptors ?? [])];
  const token = options.token;
  if (typeof token === "string") {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  } else if (token !== undefined) {
    interceptors.push(providedToken(token));
  }
  const retry = options.retry ?? false;
  if (retry !== false) interceptors.push(retryInterceptor(retry === true ? {} : retry));
  return interceptors;
}

/**
 * Sets the token a provider gives. When the provider can renew (it has
 * `invalidate`) and the server answers UNAUTHENTICATED, the token was
 * revoked or expired early (a machine that slept, a clock that jumped): the
 * provider is told, and a call that {@link isRetrySafe} allows is sent once
 * more with the token it gives then. Other calls fail as they are: a write
 * is never sent twice by the client.
 */
function providedToken(provider: TokenProvider | RenewableTokenProvider): Interceptor {
  const renewable = "invalidate" in provider ? provider : undefined;
  return (next) => async (req) => {
    const used = await provider();
    req.header.set("authorization", `Bearer ${used}`);
    if (renewable === undefined || req.stream || !isRetrySafe(req.method, req.message)) {
      return next(req);
    }
    try {
      return await next(req);
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Unauthenticated || req.signal.aborted) throw err;
      renewable.invalidate(used);
      const fresh = await provider();
      if (fresh === used) throw err;
      req.header.set("authorization", `Bearer ${fresh}`);
      return next(req);
    }
  };
}
