import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchSecretsResponse, WatchSelectorSchema } from "@coffer/client";
import { Backoff, sleep } from "@coffer/client";
import { Code } from "@connectrpc/connect";
import type { Logger } from "./logger.ts";
import { type AgentClient, codeOf } from "./reconcile.ts";

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
  backoff?: Backoff;
}

/**
 * Follows WatchSecrets until `signal` aborts: reconnects with exponential
 * backoff and full jitter (reset by any message), resumes after the last
 * cursor received, and treats three heartbeat intervals of silence as a
 * dead stream.
 */
export async function runWatch(options: WatchOptions): Promise<void> {
  const { client, logger, signal } = options;
  const backoff = options.backoff ?? new Backoff();
  const silenceMs = options.heartbeatIntervalMs * 3;
  let cursor = options.cursor;
  while (!signal.aborted) {
    const call = new AbortController();
    const stopCall = () => call.abort();
    signal.addEventListener("abort", stopCall, { once: true });
    let silent = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        call.abort();
      }, silenceMs);
    };
    let first = true;
    try {
      arm();
      const stream = client.watchSecrets(
        {
          region: options.region,
          projectId: options.projectId,
          selectors: options.selectors,
          sinceCursor: cursor,
          heartbeatInterval: {
            seconds: BigInt(Math.floor(options.heartbeatIntervalMs / 1000)),
            nanos: (options.heartbeatIntervalMs % 1000) * 1_000_000,
          },
        },
        { signal: call.signal },
      );
      for await (const event of stream) {
        arm();
        backoff.reset();
        if (first) options.onConnection?.(true);
        if (event.cursor !== "") cursor = event.cursor;
        options.onMessage(event, first);
        first = false;
      }
      if (!signal.aborted)
        logger.warn({ cursor }, "watch stream ended by the server; reconnecting");
    } catch (err) {
      if (signal.aborted) break;
      if (silent) {
        logger.warn(
          { cursor, silentMs: silenceMs },
          "watch stream silent for three heartbeat intervals; reconnecting",
        );
      } else {
        const code = codeOf(err);
        logger.warn(
          {
            cursor,
            code: Code[code],
            err: err instanceof Error ? err.message : String(err),
          },
          "watch stream failed; reconnecting",
        );
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stopCall);
      call.abort();
      if (!first) options.onConnection?.(false);
    }
    if (signal.aborted) break;
    const delayMs = backoff.next();
    logger.info({ delayMs, attempt: backoff.attempts }, "reconnecting to the watch stream");
    await sleep(delayMs, signal);
  }
}
