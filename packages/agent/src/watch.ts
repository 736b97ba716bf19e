import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Backoff,
  type BackoffOptions,
  type ReconnectEvent,
  sleep,
  type WatchSecretsResponse,
  type WatchSelectorSchema,
  watchSecrets,
} from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "./logger.ts";
import type { AgentClient } from "./reconcile.ts";

/** A selector as a request takes it. */
export type WatchSelectorInit = MessageInitShape<typeof WatchSelectorSchema>;

/** What {@link runWatch} needs. */
export interface WatchOptions {
  client: AgentClient;
  logger: Logger;
  projectId: string;
  region: string;
  selectors: WatchSelectorInit[];
  heartbeatIntervalMs: number;
  /** Where to resume; empty: from the server's head. */
  cursor: string;
  /** Ends the loop. */
  signal: AbortSignal;
  /** Each message, in order; `first` for the first message of a connection. */
  onMessage: (event: WatchSecretsResponse, first: boolean) => void;
  /** The connection went up (first message) or down. */
  onConnection?: (connected: boolean) => void;
  /** Delays between reconnections (default 100 ms doubling up to 30 s, full jitter). */
  backoff?: BackoffOptions;
}

/**
 * Follows WatchSecrets until `signal` aborts, on the client's resumable
 * watch (`watchSecrets` of @coffer/client): it reconnects with backoff and
 * full jitter, resumes after the last cursor received (heartbeats
 * included), and treats three heartbeat intervals of silence as a dead
 * stream. The agent adds what a daemon needs: every message, heartbeats
 * too, reaches `onMessage` (the agent decides when a cursor may be saved,
 * after the work an event asks for); the connection's state is reported;
 * and an error the client's watch gives up on (a revoked token, a project
 * removed) is logged and retried here after a backoff, from the same
 * cursor, since an agent runs unattended and its token may be fixed under
 * it.
 */
export async function runWatch(options: WatchOptions): Promise<void> {
  const { client, logger, signal } = options;
  const backoff = new Backoff(options.backoff);
  let cursor = options.cursor;
  let connected = false;
  const down = () => {
    if (!connected) return;
    connected = false;
    options.onConnection?.(false);
  };
  const onReconnect = (r: ReconnectEvent) => {
    down();
    logReason(logger, r.cursor, r.error, options.heartbeatIntervalMs * 3);
    logger.info({ delayMs: r.delayMs, attempt: r.attempt }, "reconnecting to the watch stream");
  };
  while (!signal.aborted) {
    const watch = watchSecrets(client, {
      projectId: options.projectId,
      region: options.region,
      selectors: options.selectors,
      since: cursor,
      heartbeats: true,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      signal,
      ...(options.backoff !== undefined && { backoff: options.backoff }),
      onReconnect,
    });
    try {
      for await (const event of watch) {
        backoff.reset();
        const first = !connected;
        if (first) {
          connected = true;
          options.onConnection?.(true);
        }
        options.onMessage(event, first);
      }
    } catch (err) {
      // Only errors the client will not retry reach here (UNAUTHENTICATED,
      // PERMISSION_DENIED, NOT_FOUND...).
      logReason(logger, watch.cursor, ConnectError.from(err), options.heartbeatIntervalMs * 3);
    } finally {
      cursor = watch.cursor;
      down();
    }
    if (signal.aborted) break;
    const delayMs = backoff.next();
    logger.info({ delayMs, attempt: backoff.attempts }, "reconnecting to the watch stream");
    await sleep(delayMs, signal);
  }
}

/** Says why a stream ended, in the agent's words. */
function logReason(
  logger: Logger,
  cursor: string,
  error: ConnectError | undefined,
  silentMs: number,
): void {
  if (error === undefined) {
    logger.warn({ cursor }, "watch stream ended by the server; reconnecting");
  } else if (
    error.code === Code.DeadlineExceeded &&
    error.rawMessage.startsWith("no message for")
  ) {
    logger.warn(
      { cursor, silentMs },
      "watch stream silent for three heartbeat intervals; reconnecting",
    );
  } else {
    logger.warn(
      { cursor, code: Code[error.code], err: error.message },
      "watch stream failed; reconnecting",
    );
  }
}
