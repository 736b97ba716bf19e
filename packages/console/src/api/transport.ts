import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { readToken } from "../session/session.ts";

/**
 * Adds the signed-in token to every call, read at call time so signing in
 * and out needs no new transport. A call that already names its own
 * authorization (the sign-in check of a pasted token) keeps it.
 */
export const bearer =
  (token: () => string | undefined): Interceptor =>
  (next) =>
  (req) => {
    const t = token();
    if (t !== undefined && !req.header.has("authorization")) {
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
