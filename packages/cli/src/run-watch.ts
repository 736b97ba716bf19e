import { WatchEventKindSchema } from "@coffer/api";
import {
  type WatchEvent,
  WatchEventKind,
  type WatchSelectorSpec,
  watchSecrets,
} from "@coffer/client";
import type { Connection } from "./connection.ts";
import type { Context } from "./context.ts";
import { CliError, ExitCode } from "./errors.ts";
import { enumName } from "./output.ts";
import { describeError } from "./rpc-errors.ts";
import type { Selection } from "./run-secrets.ts";

/**
 * `coffer run --watch`: the WatchSecrets stream of the selection, and the
 * reloads it asks for. Only events reach here, never values.
 */

/**
 * Events that come together (a new version and the previous one disabled,
 * written by one transaction and delivered in one tick of the server's
 * feed) are read once, this long after the first.
 */
const SETTLE_MS = 50;

/**
 * Opens WatchSecrets for the selection (a folder's secrets are watched
 * through its prefix, and the events below it ignored) and waits for its
 * first message, the heartbeat the server sends once the stream is
 * established.
 * @throws the watch's error when it cannot be established (no permission).
 */
export async function openWatch(
  conn: Connection,
  projectId: string,
  selection: Selection,
  signal: AbortSignal,
): Promise<AsyncIterator<WatchEvent>> {
  const selectors: WatchSelectorSpec[] = [];
  if (selection.folder !== undefined) selectors.push({ pathPrefix: selection.folder });
  for (const n of selection.named) {
    selectors.push(n.kind === "id" ? { secretId: n.id } : { path: n.path, name: n.name });
  }
  const iterator = watchSecrets(conn.secrets, {
    projectId,
    region: conn.settings.region,
    selectors,
    heartbeats: true,
    signal,
  })[Symbol.asyncIterator]();
  // The watch retries a server that cannot be reached, forever: the
  // first message gets the calls' deadline.
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CliError(
            `the watch stream did not open within ${conn.settings.timeoutMs} ms`,
            ExitCode.Unavailable,
            `is a server running at ${conn.settings.url}?`,
          ),
        ),
      conn.settings.timeoutMs,
    );
  });
  try {
    await Promise.race([iterator.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
  return iterator;
}

/**
 * Follows the watch, and calls `reload` once per burst of events that
 * concern the selection (or a RESYNC), one reload at a time. A watch that
 * fails for good (a revoked token) is reported and given up: the child
 * keeps running.
 */
export async function follow(
  ctx: Context,
  stream: AsyncIterator<WatchEvent>,
  selection: Selection,
  secretIds: () => string[],
  signal: AbortSignal,
  hooks: { reload(why: string): Promise<void> },
): Promise<void> {
  const concerns = (e: WatchEvent): boolean => {
    if (e.kind === WatchEventKind.RESYNC) return true;
    if (e.kind === WatchEventKind.HEARTBEAT) return false;
    if (secretIds().includes(e.secretId)) return true;
    if (selection.named.some((n) => n.kind === "id" && n.id === e.secretId)) return true;
    const places = [
      { path: e.path, name: e.name },
      ...(e.previousLocation ? [e.previousLocation] : []),
    ];
    return places.some(
      (p) =>
        p.path === selection.folder ||
        selection.named.some((n) => n.kind === "path" && n.path === p.path && n.name === p.name),
    );
  };
  let pending: string | undefined;
  let running: Promise<void> = Promise.resolve();
  const schedule = (why: string) => {
    if (pending !== undefined) return;
    pending = why;
    setTimeout(() => {
      running = running
        .then(async () => {
          const reason = pending as string;
          pending = undefined;
          if (!signal.aborted) await hooks.reload(reason);
        })
        // reload reports its own failures; a stderr that cannot be written
        // to must not end the run with an unhandled rejection.
        .catch(() => {});
    }, SETTLE_MS);
  };
  try {
    for (;;) {
      const next = await stream.next();
      if (next.done) return;
      const event = next.value;
      if (!concerns(event)) continue;
      const where =
        event.kind === WatchEventKind.RESYNC
          ? "the watch resynced"
          : `${event.path === "/" ? "" : event.path}/${event.name} changed (${enumName(WatchEventKindSchema, event.kind)})`;
      schedule(where);
    }
  } catch (err) {
    if (signal.aborted) return;
    const { message } = describeError(err);
    await ctx.io.stderr.write(
      `coffer: the watch ended: ${message}; the program keeps running with the values it has\n`,
    );
  }
}
