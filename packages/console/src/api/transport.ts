import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { readToken } from "../session/session.ts";

/**
 * Adds the signed-in token to every call, read at call time so signing in
 * and out needs no new transport. A call that already names its own
 * authorization (the sign-in check of a pasted token) keeps it. Without a
 * token the call never leaves the page: a read that races a sign-out
 * fails here instead of reaching the server (and its audit trail) unsigned.
 */
export const bearer =
  (token: () => string | undefined): Interceptor =>
  (next) =>
  (req) => {
    if (!req.header.has("authorization")) {
      const t = token();
      if (t === undefined) throw new ConnectError("not signed in", Code.Unauthenticated);
      req.header.set("authorization", `Bearer ${t}`);
    }
    return next(req);
  };

/** The one transport: Connect over fetch to the server that served the page (same origin). */
export function createTransport(baseUrl = window.location.origin): Transport {
  return createConnectTransport({
    baseUrl,
    useBinaryFormat: false,
    interceptors: [bearer(readToken)],
  });
}
