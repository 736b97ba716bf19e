/**
 * The baseline of the idle-stream memory benchmark: a bare connect-node
 * server over cleartext HTTP/2 with one server-streaming RPC (Coffer's
 * WatchSecrets descriptor) that sends one message and then waits until the
 * client cancels. No database, no auth, no feed: what an idle stream costs
 * in Node, nghttp2 and connect-node alone.
 *
 * Listens on 127.0.0.1 and `BENCH_PORT` (0: any), and prints
 * `{"port":N}` on stdout once listening.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { SecretService, WatchEventKind } from "@coffer/api";
import { connectNodeAdapter } from "@connectrpc/connect-node";

const handler = connectNodeAdapter({
  routes: (router) =>
    router.rpc(SecretService.method.watchSecrets, async function* (_req, ctx) {
      yield { kind: WatchEventKind.HEARTBEAT, cursor: "0" };
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    }),
});

const server = http2.createServer(handler);
server.listen(Number(process.env.BENCH_PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.once("SIGTERM", () => process.exit(0));
