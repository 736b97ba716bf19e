import type { Backoff, JwtTokenProvider } from "@coffer/client";
import type { Logger } from "./logger.ts";

/** What the agent needs of a token that renews: a `jwtTokenProvider`'s renewal side. */
export type RenewingToken = Pick<JwtTokenProvider, "renew" | "onRenew" | "expiresAt">;

/** Options of {@link keepRenewing}. */
export interface RenewalOptions {
  logger: Logger;
  /** Stops the renewals. */
  signal: AbortSignal;
  /** Delays between attempts after a failed renewal. */
  backoff: Backoff;
}

/**
 * Renews `token` when it is due, whether or not a call asks for it: while
 * nothing changes, the agent's only call is its watch stream, which asks for
 * a token only when it connects, and the server ends that stream when the
 * token expires. After each exchange (the first one included, made by the
 * agent's first call) the next renewal is set for the token's `renewAt`; a
 * renewal that fails is tried again with the backoff until one works or the
 * agent stops, the current token serving meanwhile. Logs the token's id and
 * times, never the token or the JWT (an exchange's error names the JWT's
 * file and what to check, not its content).
 */
export function keepRenewing(token: RenewingToken, options: RenewalOptions): void {
  const { logger, signal, backoff } = options;
  let timer: NodeJS.Timeout | undefined;
  let exchanges = 0;
  const at = (ms: number) => {
    clearTimeout(timer);
    if (!signal.aborted) timer = setTimeout(renew, Math.max(0, ms));
  };
  const renew = () => {
    token.renew().catch((err: unknown) => {
      const delayMs = backoff.next();
      logger.error(
        { err: (err as Error).message, delayMs, attempt: backoff.attempts },
        "cannot renew the Coffer token; retrying",
      );
      at(delayMs);
    });
  };
  const stopListening = token.onRenew((r) => {
    exchanges += 1;
    backoff.reset();
    logger.info(
      {
        tokenId: r.tokenId,
        expiresAt: r.expiresAt.toISOString(),
        renewAt: r.renewAt.toISOString(),
      },
      exchanges === 1 ? "signed in with the JWT" : "Coffer token renewed",
    );
    at(r.renewAt.getTime() - Date.now());
  });
  signal.addEventListener(
    "abort",
    () => {
      clearTimeout(timer);
      stopListening();
    },
    { once: true },
  );
}

/**
 * `onTokenRenewed` for the watch: every renewal, but not the first exchange
 * when there was no token yet (the watch's first connection is the call
 * waiting for that one).
 */
export function renewalsOf(token: RenewingToken): (listener: () => void) => () => void {
  return (listener) => {
    let skip = token.expiresAt === undefined;
    return token.onRenew(() => {
      if (skip) skip = false;
      else listener();
    });
  };
}
