import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type BackoffOptions, backoffDelay, sleep } from "./backoff.ts";

/** Options of {@link retryInterceptor}. */
export interface RetryOptions extends BackoffOptions {
  /** Attempts in all, the first included (default 4). 1 turns retries off. */
  maxAttempts?: number;
  /** Called before each retry, for logs and metrics. */
  onRetry?: (retry: RetryEvent) => void;
}

/** One retry about to happen. */
export interface RetryEvent {
  /** "coffer.secretmanager.v1.SecretService/GetSecret" ... */
  procedure: string;
  /** 1 for the first retry. */
  retry: number;
  /** How long the retry waits, in milliseconds. */
  delayMs: number;
  /** The UNAVAILABLE error of the attempt that failed. */
  error: ConnectError;
}

/** The accesses: never marked NO_SIDE_EFFECTS, since one may consume a single-access version. */
const ACCESSES = new Set([
  "coffer.secretmanager.v1.SecretService.AccessSecretVersion",
  "coffer.secretmanager.v1.SecretService.AccessSecretVersionByPath",
]);

/**
 * Whether a unary call may be sent again after UNAVAILABLE. The rule:
 *
 * - methods the proto marks `idempotency_level = NO_SIDE_EFFECTS` (the reads:
 *   Get, List, Browse, and the AdminService lists): yes. The proto declares
 *   it once, for this retry and for the server, which serves them over HTTP
 *   GET too;
 * - an access with `no_consume` set: yes. It never spends anything: a
 *   single-access version answers without its payload, any other version
 *   with it. The mark is per method and an access consumes unless the
 *   request says otherwise, so this one is decided per request here;
 * - any other access: never. The client cannot know that the version is not
 *   single-access before the answer says so, and UNAVAILABLE does not prove
 *   that the server did not serve it: a connection cut after the commit
 *   loses an answer whose version is already consumed;
 * - every other method (writes, and new ones until the proto marks them):
 *   never.
 */
export function isRetrySafe(
  method: Pick<DescMethod, "idempotency" | "parent" | "name">,
  message: unknown,
): boolean {
  if (method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) return true;
  return (
    ACCESSES.has(`${method.parent.typeName}.${method.name}`) &&
    (message as { noConsume?: unknown } | undefined)?.noConsume === true
  );
}

/**
 * Retries calls that {@link isRetrySafe} allows when they fail with
 * UNAVAILABLE, with exponential backoff and full jitter (100 ms doubling up
 * to 5 s by default), at most `maxAttempts` times in all. Every other call,
 * every other code and every stream goes through once. The call's deadline
 * (`timeoutMs`) and abort signal cover all its attempts and the waits
 * between them.
 */
export function retryInterceptor(options: RetryOptions = {}): Interceptor {
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
  return (next) => async (req) => {
    if (req.stream || !isRetrySafe(req.method, req.message)) {
      return next(req);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const error = ConnectError.from(err);
        if (error.code !== Code.Unavailable || attempt >= maxAttempts || req.signal.aborted) {
          throw err;
        }
        const delayMs = backoffDelay(attempt - 1, options, 5_000);
        options.onRetry?.({
          procedure: `${req.service.typeName}/${req.method.name}`,
          retry: attempt,
          delayMs,
          error,
        });
        await sleep(delayMs, req.signal);
        if (req.signal.aborted) throw ConnectError.from(req.signal.reason, Code.Canceled);
      }
    }
  };
}
