/**
 * Baseline (b) of the access benchmark: a bare node:http2 handler that reads
 * the gRPC request, decodes it, and answers a gRPC-framed 1 KiB
 * AccessSecretVersionResponse with `grpc-status: 0` trailers. No gRPC
 * library: what Node's HTTP/2 (nghttp2) costs per call. Listens on
 * 127.0.0.1:`BENCH_PORT`; prints `{"port":N}` once listening.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { AccessSecretVersionRequestSchema, AccessSecretVersionResponseSchema } from "@coffer/api";
import { grpcFrame, grpcMessages } from "../support/grpc-frames.ts";
import { announce, echoResponse } from "./echo-payload.ts";

const server = http2.createServer();
server.on("stream", (stream) => {
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  stream.on("end", () => {
    let frame: Buffer;
    try {
      const [message] = grpcMessages(Buffer.concat(chunks));
      if (message === undefined) throw new Error("no message");
      const req = fromBinary(AccessSecretVersionRequestSchema, message);
      frame = grpcFrame(toBinary(AccessSecretVersionResponseSchema, echoResponse(req)));
    } catch {
      stream.respond(
        { ":status": 200, "content-type": "application/grpc", "grpc-status": "3" },
        { endStream: true },
      );
      return;
    }
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame);
  });
  stream.on("error", () => {});
});
server.listen(Number(process.env.BENCH_PORT ?? 0), "127.0.0.1", () => {
  announce((server.address() as AddressInfo).port, () => server.close());
});
