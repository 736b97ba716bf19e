import type * as http from "node:http";
import type * as http2 from "node:http2";
import { createContextKey } from "@connectrpc/connect";

/**
 * The address of the client that made the call, as `address:port`, or
 * undefined when the transport cannot tell. Every transport sets it in the
 * handler context's values so that audit and logging see one shape whatever
 * the protocol.
 */
export const peerKey = createContextKey<string | undefined>(undefined, {
  description: "peer address",
});

/**
 * Whether the client has left the call (reset its stream, closed its
 * connection, or let its deadline pass) before the call's answer was ready:
 * a unary call runs to its end anyway (README, "Decisions"), and its log
 * line says the answer was never delivered. Every transport sets it; read
 * it when the answer is ready, not before.
 */
export const clientGoneKey = createContextKey<() => boolean>(() => false, {
  description: "whether the client left before the answer",
});

/**
 * Whether the client of a Node.js HTTP request is gone: its HTTP/2 stream
 * was reset or its session closed, or its HTTP/1.1 connection closed.
 */
export function clientGoneFromNodeRequest(
  req: http.IncomingMessage | http2.Http2ServerRequest,
): () => boolean {
  // The HTTP/2 compatibility request's socket is a proxy that throws once
  // its stream is closed: ask the stream.
  if ("stream" in req) return () => req.stream.destroyed;
  return () => req.socket.destroyed;
}

/**
 * Renders the peer of a Node.js HTTP request the way grpc-js's
 * `call.getPeer()` does (`address:port`, IPv6 without brackets), so that a
 * client shows up the same in the audit log over Connect, gRPC-Web and gRPC.
 */
export function peerFromNodeRequest(
  req: http.IncomingMessage | http2.Http2ServerRequest,
): string | undefined {
  // Read it when the request arrives: once an HTTP/2 stream is closed its
  // socket proxy throws instead of answering.
  const { remoteAddress, remotePort } = req.socket;
  if (!remoteAddress) {
    return undefined;
  }
  return remotePort ? `${remoteAddress}:${remotePort}` : remoteAddress;
}
