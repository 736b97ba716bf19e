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

/** Calls that change nothing, by service then method: safe to send again. */
const READS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  [
    "coffer.secretmanager.v1.SecretService",
    new Set([
      "GetSecret",
      "ListSecrets",
      "BrowseSecrets",
      "ListTags",
      "ListSecretTypes",
      "GetSecretVersion",
      "ListSecretVersions",
    ]),
  ],
  ["coffer.admin.v1.AdminService", new Set(["ListProjects", "ListTokens", "ListAuditEvents"])],
]);

const ACCESSES = new Set(["AccessSecretVersion", "AccessSecretVersionByPath"]);

/**
 * Whether a unary call may be sent again after UNAVAILABLE. The rule:
 *
 * - reads (Get, List, Browse, Tags, Types, and the AdminService lists): yes;
 * - an access with `no_consume` set: yes. It never spends anything: a
 *   single-access version answers without its payload, any other version
 *   with it;
 * - any other access: never. The client cannot know that the version is not
 *   single-access before the answer says so, and UNAVAILABLE does not prove
 *   that the server did not serve it: a connection cut after the commit
 *   loses an answer whose version is already consumed;
 * - writes, and every method not listed here (new ones included): never.
 */
export function isRetrySafe(service: string, method: string, message: unknown): boolean {
  if (READS.get(service)?.has(method) === true) return true;
  return (
    service === "coffer.secretmanager.v1.SecretService" &&
    ACCESSES.has(method) &&
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
    if (req.stream || !isRetrySafe(req.service.typeName, req.method.name, req.message)) {
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
