import { Code, ConnectError } from "@connectrpc/connect";

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 50 ms until it holds; throws naming `what` past `ms`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 30_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await sleep(50);
  }
}

/** The name of an error's Connect code ("Unavailable", "Internal" ...). */
export function codeName(err: unknown): string {
  return Code[ConnectError.from(err).code];
}

/** Counts names: `{ Unavailable: 12, OK: 30 }`. */
export function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

/**
 * How a failed call ended, as the caller can tell: "connection lost" when
 * the connection to the server broke under it, else the code's name.
 * connect-node does not report a broken connection as UNAVAILABLE: a reset
 * socket comes out as ABORTED ("read ECONNRESET") and the streams of an
 * HTTP/2 session that died as CANCELED ("stream closed with error code
 * CANCEL"), so those are recognised by their messages.
 */
export function failureOf(err: unknown): string {
  const e = ConnectError.from(err);
  // @coffer/client reports a connection cut under a call as UNAVAILABLE,
  // keeping connect-node's message; a refusal stays plain "Unavailable".
  if (e.code === Code.Unavailable) {
    return /ECONNRESET|EPIPE|stream closed with error code (CANCEL|NGHTTP2_CANCEL)|socket hang up/.test(
      e.rawMessage,
    )
      ? "connection lost"
      : "Unavailable";
  }
  if (
    (e.code === Code.Aborted || e.code === Code.Canceled || e.code === Code.Internal) &&
    /ECONNRESET|ECONNREFUSED|EPIPE|stream closed with error code (CANCEL|NGHTTP2_CANCEL)|socket hang up/.test(
      e.rawMessage,
    )
  ) {
    return "connection lost";
  }
  return Code[e.code];
}
