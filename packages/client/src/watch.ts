import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { WatchEventKind, type WatchSecretsResponse, type WatchSelectorSchema } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { type BackoffOptions, backoffDelay, sleep } from "./backoff.ts";
import type { CofferClient } from "./client.ts";

/** One message of a watch: a change, a RESYNC, or (when asked for) a heartbeat. */
export type WatchEvent = WatchSecretsResponse;

/**
 * What a watch follows: a secret by id, a secret by folder and name (it
 * keeps matching a secret created again there), a folder and everything
 * under it, or a `WatchSelector` as the API spells it.
 */
export type WatchSelectorSpec =
  | { secretId: string }
  | { path: string; name: string }
  | { pathPrefix: string }
  | MessageInitShape<typeof WatchSelectorSchema>;

/** Options of a watch. */
export interface WatchOptions {
  /** The project to follow; defaults to the one given to `createCoffer`. */
  projectId?: string;
  /** The region to follow; defaults to the client's, then the server's default. */
  region?: string;
  /** Up to 1,000 selectors; none: every secret of the project the token may read. */
  selectors?: WatchSelectorSpec[];
  /**
   * The cursor of the last event already handled (a previous watch's
   * `cursor`, or an event's): the watch starts right after it. Unset: from
   * now.
   */
  since?: string;
  /** Also yield HEARTBEAT messages (hidden by default; they still advance `cursor`). */
  heartbeats?: boolean;
  /**
   * How often a quiet server sends a heartbeat, 1 s to 5 min (the server's
   * default, 15 s, when unset). Three intervals without any message count
   * as a dead connection: the watch reconnects.
   */
  heartbeatIntervalMs?: number;
  /** Ends the watch: the iteration stops, without an error. */
  signal?: AbortSignal;
  /** Delays between reconnections (default 100 ms doubling up to 30 s, full jitter). */
  backoff?: BackoffOptions;
  /** Called before each reconnection, for logs and metrics. */
  onReconnect?: (reconnect: ReconnectEvent) => void;
}

/** A reconnection about to happen. */
export interface ReconnectEvent {
  /** 1 for the first reconnection since the last message received. */
  attempt: number;
  /** How long the reconnection waits, in milliseconds. */
  delayMs: number;
  /** Where the watch resumes. */
  cursor: string;
  /** Why the last stream ended; undefined when the server ended it cleanly. */
  error: ConnectError | undefined;
}

/** The RPC a watch needs. */
export type WatchClient = Pick<CofferClient, "watchSecrets">;

/**
 * Codes that say the request itself is wrong, or the caller may not make
 * it: sending it again would fail the same way, so the watch ends with the
 * error. Anything else (UNAVAILABLE first of all, a connection cut, a
 * deadline from a proxy) is a broken connection, and the watch resumes.
 */
const FATAL = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.DataLoss,
  Code.Unauthenticated,
]);

const SERVER_HEARTBEAT_MS = 15_000;

/**
 * A running watch of `WatchSecrets`: iterate it with `for await`. It
 * reconnects whenever the connection breaks or the server ends the stream
 * (a server shutting down ends it with UNAVAILABLE), after a backoff with
 * full jitter, and resumes after the last cursor it received, so nothing is
 * missed or repeated. It yields RESYNC messages (the events after the
 * cursor are gone: read the state again, then go on) and change events;
 * heartbeats only when asked for. It ends when `signal` aborts or the loop
 * breaks, and throws only errors that reconnecting cannot fix
 * (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND...).
 */
export class SecretWatch implements AsyncIterable<WatchEvent> {
  #cursor: string;
  #started = false;
  readonly #client: WatchClient;
  readonly #options: WatchOptions & { projectId: string };

  /** Prefer `coffer.watch(...)` or {@link watchSecrets}. */
  constructor(client: WatchClient, options: WatchOptions & { projectId: string }) {
    this.#client = client;
    this.#options = options;
    this.#cursor = options.since ?? "";
  }

  /**
   * The cursor of the last message received, heartbeats included: store it
   * and pass it as `since` to pick up where this watch stopped. Empty until
   * the first message.
   */
  get cursor(): string {
    return this.#cursor;
  }

  /** Starts the watch; a watch can be iterated once. */
  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.#started) throw new Error("a watch can be iterated only once; start another");
    this.#started = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<WatchEvent, void, undefined> {
    const options = this.#options;
    const outer = options.signal;
    const silenceMs = 3 * (options.heartbeatIntervalMs ?? SERVER_HEARTBEAT_MS);
    const selectors = (options.selectors ?? []).map(selectorInit);
    // A function, not a narrowed property: the signal aborts while this runs.
    const stopped = () => outer?.aborted === true;
    let failures = 0;
    while (!stopped()) {
      const call = new AbortController();
      const stopCall = () => call.abort();
      outer?.addEventListener("abort", stopCall, { once: true });
      let silent = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          silent = true;
          call.abort();
        }, silenceMs);
      };
      let error: ConnectError | undefined;
      try {
        arm();
        const stream = this.#client.watchSecrets(
          {
            region: options.region ?? "",
            projectId: options.projectId,
            selectors,
            sinceCursor: this.#cursor,
            ...(options.heartbeatIntervalMs !== undefined && {
              heartbeatInterval: durationFromMs(options.heartbeatIntervalMs),
            }),
          },
          // A watch lasts as long as it is followed: never the client's default deadline.
          { signal: call.signal, timeoutMs: 0 },
        );
        for await (const event of stream) {
          failures = 0;
          if (event.cursor !== "") this.#cursor = event.cursor;
          if (event.kind === WatchEventKind.HEARTBEAT && options.heartbeats !== true) {
            arm();
            continue;
          }
          // The caller may take its time with an event: that is not silence.
          clearTimeout(timer);
          yield event;
          arm();
        }
      } catch (err) {
        if (stopped()) return;
        error = silent
          ? new ConnectError(
              `no message for ${silenceMs} ms (three heartbeat intervals)`,
              Code.DeadlineExceeded,
            )
          : ConnectError.from(err);
        if (FATAL.has(error.code)) throw error;
      } finally {
        clearTimeout(timer);
        outer?.removeEventListener("abort", stopCall);
        call.abort();
      }
      if (stopped()) return;
      const delayMs = backoffDelay(failures, options.backoff ?? {}, 30_000);
      failures += 1;
      options.onReconnect?.({ attempt: failures, delayMs, cursor: this.#cursor, error });
      await sleep(delayMs, outer);
    }
  }
}

/**
 * Follows the changes to a project's secrets: see {@link SecretWatch}.
 *
 * @example
 * const watch = watchSecrets(client, { projectId, selectors: [{ pathPrefix: "/prod" }], since });
 * for await (const event of watch) {
 *   if (event.kind === WatchEventKind.RESYNC) await reloadEverything();
 *   else await reload(event.path, event.name);
 *   await saveCursor(event.cursor);
 * }
 */
export function watchSecrets(client: WatchClient, options: WatchOptions): SecretWatch {
  const projectId = options.projectId;
  if (projectId === undefined || projectId === "") {
    throw new TypeError("a watch needs a projectId (an option of createCoffer or of the call)");
  }
  return new SecretWatch(client, { ...options, projectId });
}

function selectorInit(s: WatchSelectorSpec): MessageInitShape<typeof WatchSelectorSchema> {
  if ("secretId" in s) return { selector: { case: "secretId", value: s.secretId } };
  if ("pathPrefix" in s) return { selector: { case: "pathPrefix", value: s.pathPrefix } };
  if ("name" in s && "path" in s) {
    return { selector: { case: "location", value: { path: s.path, name: s.name } } };
  }
  return s;
}
