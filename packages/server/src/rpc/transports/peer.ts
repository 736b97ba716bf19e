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
