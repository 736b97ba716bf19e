import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Backoff,
  type BackoffOptions,
  type ReconnectEvent,
  type SecretWatch,
  sleep,
  WatchEventKind,
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
  /**
   * Subscribes to renewals of the client's token (a `jwtTokenProvider`'s
   * `onRenew`); returns the unsubscribe. Each renewal moves the watch to a
   * stream opened with the new token (see {@link runWatch}).
   */
  onTokenRenewed?: (listener: () => void) => () => void;
}

/** One WatchSecrets stream of {@link runWatch}, on the client's resumable watch. */
interface Stream {
  readonly watch: SecretWatch;
  readonly controller: AbortController;
  /**
   * Cursors of the events the stream before this one passed on after this
   * one was opened: this one replays them first, and they are skipped.
   */
  readonly replayed: string[];
  /** Resolves when the stream ends: with the error it ended with, or undefined once aborted. */
  done: Promise<ConnectError | undefined>;
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
 *
 * A token that renews (an exchanged one, `server.auth.jwt_file`) is
 * followed make-before-break: the server ends a stream when the token it
 * was opened with expires, so on each renewal a second stream is opened
 * with the new token from the last cursor, while the first one goes on
 * passing events; once the new one has sent its first message it takes
 * over and the old one is closed. The events the old one passed on in
 * between come again on the new one and are skipped, so each reaches
 * `onMessage` once, and the connection never reports down.
 */
export async function runWatch(options: WatchOptions): Promise<void> {
  const { client, logger, signal } = options;
  const backoff = new Backoff(options.backoff);
  let cursor = options.cursor;
  let connected = false;
  /** The stream whose messages are passed on. */
  let active: Stream | undefined;
  /** A stream opened with a renewed token, until its first message. */
  let incoming: Stream | undefined;
  const down = () => {
    if (!connected) return;
    connected = false;
    options.onConnection?.(false);
  };

  const deliver = (stream: Stream, event: WatchSecretsResponse) => {
    if (stream === incoming) {
      // Its first message: the new stream works, so it takes over.
      const old = active;
      active = stream;
      incoming = undefined;
      old?.controller.abort();
      logger.info({ cursor: event.cursor }, "watch moved to a stream with the renewed token");
    }
    if (stream !== active) return;
    const heartbeat = event.kind === WatchEventKind.HEARTBEAT;
    if (stream.replayed.length > 0) {
      if (heartbeat) return;
      if (stream.replayed[0] === event.cursor) {
        stream.replayed.shift();
        return;
      }
      // Not the replay expected (a RESYNC...): pass everything on from here.
      stream.replayed.length = 0;
    }
    backoff.reset();
    if (event.cursor !== "") cursor = event.cursor;
    if (incoming !== undefined && !heartbeat) incoming.replayed.push(event.cursor);
    const first = !connected;
    if (first) {
      connected = true;
      options.onConnection?.(true);
    }
    options.onMessage(event, first);
  };

  const open = (since: string): Stream => {
    const controller = new AbortController();
    const stop = () => controller.abort();
    signal.addEventListener("abort", stop, { once: true });
    let stream: Stream;
    const onReconnect = (r: ReconnectEvent) => {
      if (stream !== active) return;
      down();
      logReason(logger, r.cursor, r.error, options.heartbeatIntervalMs * 3);
      logger.info({ delayMs: r.delayMs, attempt: r.attempt }, "reconnecting to the watch stream");
    };
    const watch = watchSecrets(client, {
      projectId: options.projectId,
      region: options.region,
      selectors: options.selectors,
      since,
      heartbeats: true,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      signal: controller.signal,
      ...(options.backoff !== undefined && { backoff: options.backoff }),
      onReconnect,
    });
    stream = { watch, controller, replayed: [], done: Promise.resolve(undefined) };
    stream.done = (async () => {
      try {
        for await (const event of watch) deliver(stream, event);
        return undefined;
      } catch (err) {
        // Only errors the client will not retry reach here (UNAUTHENTICATED,
        // PERMISSION_DENIED, NOT_FOUND...).
        return ConnectError.from(err);
      } finally {
        signal.removeEventListener("abort", stop);
      }
    })();
    return stream;
  };

  const renewed = () => {
    if (signal.aborted || active === undefined) return;
    // A renewal while the previous one is still connecting: start over with the newest token.
    incoming?.controller.abort();
    const next = open(cursor);
    incoming = next;
    void next.done.then((error) => {
      if (next !== incoming) return;
      // It never sent a message: the old stream goes on while its token lasts.
      incoming = undefined;
      if (error !== undefined) {
        logger.warn(
          { cursor, code: Code[error.code], err: error.message },
          "cannot open a watch stream with the renewed token; keeping the current one",
        );
      }
    });
  };
  const unsubscribe = options.onTokenRenewed?.(renewed);

  try {
    active = open(cursor);
    while (!signal.aborted) {
      const stream: Stream = active;
      const error = await stream.done;
      if (signal.aborted) break;
      // Replaced by a stream with a renewed token: follow that one.
      if (stream !== active) continue;
      down();
      if (error !== undefined) {
        logReason(logger, stream.watch.cursor, error, options.heartbeatIntervalMs * 3);
      }
      if (incoming !== undefined) {
        active = incoming;
        incoming = undefined;
        continue;
      }
      const delayMs = backoff.next();
      logger.info({ delayMs, attempt: backoff.attempts }, "reconnecting to the watch stream");
      await sleep(delayMs, signal);
      if (!signal.aborted) active = open(cursor);
    }
  } finally {
    unsubscribe?.();
    incoming?.controller.abort();
    active?.controller.abort();
    await Promise.all([active?.done, incoming?.done]);
    down();
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
