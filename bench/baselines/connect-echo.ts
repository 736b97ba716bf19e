/**
 * Baseline of the access benchmark over Connect: a bare connect-node server
 * (cleartext HTTP/2, as Coffer's HTTP port) with one method,
 * SecretService.AccessSecretVersion, answering a 1 KiB response. No auth,
 * no database, no audit: what connect-node costs per call. Listens on
 * 127.0.0.1:`BENCH_PORT`; prints `{"port":N}` once listening.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { SecretService } from "@coffer/api";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { announce, echoResponse } from "./echo-payload.ts";

const handler = connectNodeAdapter({
  routes: (router) => router.rpc(SecretService.method.accessSecretVersion, echoResponse),
});
const server = http2.createServer(handler);
server.listen(Number(process.env.BENCH_PORT ?? 0), "127.0.0.1", () => {
  announce((server.address() as AddressInfo).port, () => server.close());
});
