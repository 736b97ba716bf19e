/**
 * Not a baseline of `npm run bench`: the grpc-js echo (grpc-js-echo.ts)
 * served through Coffer's grpc-js adapter (`addService`, the one the server
 * uses, with its call context) instead of a bare grpc-js handler, and nothing
 * else of Coffer: no interceptor, chain, domain or database. Its
 * AccessSecretVersion answers the echo's 1 KiB response, after `DELAY_MS`
 * (default 0: in the same turn, after the handler's await). Listens on
 * 127.0.0.1:`BENCH_PORT`; prints `{"port":N}` once listening.
 *
 * For telling what the adapter costs from what grpc-js costs, e.g. in
 * garbage collection: `TARGET=grpc-js-adapter-echo node --import tsx
 * bench/probes/scavenges.ts` against `TARGET=grpc-js-echo` (bench/RESULTS.md,
 * access reading of 2026-12-06, third session).
 */
import { SecretService } from "@coffer/api";
import { addService } from "@coffer/server/testing";
import * as grpc from "@grpc/grpc-js";
import { echoResponse, listenGrpc } from "./echo-payload.ts";

const delayMs = Number(process.env.DELAY_MS ?? 0);
const server = new grpc.Server();
addService(server, SecretService, {
  accessSecretVersion: async (request) => {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return echoResponse(request);
  },
});
listenGrpc(server);
