/**
 * Baseline of the access benchmark over REST: a bare node:http2 server
 * (cleartext HTTP/2, as Coffer's HTTP port and as h2load sends the REST
 * GETs) answering `GET …/secrets/{secret_id}/versions/{revision}/access`
 * with the JSON of Coffer's answer, built per call (echoJson). It uses
 * node's request/response API, the one Coffer's REST handler is given; not
 * node:http, which speaks only HTTP/1.1 and so could not carry the same
 * load as the HTTP/2 measurements. No RPC library, no auth, no database, no
 * audit: what a JSON GET costs in Node. Listens on 127.0.0.1:`BENCH_PORT`;
 * prints `{"port":N}` once listening.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { announce, echoJson } from "./echo-payload.ts";

/** `/secret-manager/v1beta1/regions/{region}/secrets/{id}/versions/{revision}/access`, split on "/". */
const SEGMENTS = 10;

const server = http2.createServer((req, res) => {
  const segments = (req.url ?? "").split("?", 1)[0]?.split("/") ?? [];
  const secretId = decodeURIComponent(segments[6] ?? "");
  const revision = Number(segments[8]);
  if (req.method !== "GET" || segments.length !== SEGMENTS || segments[9] !== "access") {
    res.writeHead(404);
    res.end();
    return;
  }
  const body = echoJson(secretId, revision);
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", body.length);
  res.writeHead(200);
  res.end(body);
});
server.listen(Number(process.env.BENCH_PORT ?? 0), "127.0.0.1", () => {
  announce((server.address() as AddressInfo).port, () => server.close());
});
