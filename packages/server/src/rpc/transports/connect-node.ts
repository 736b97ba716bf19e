import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import { createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { peerFromNodeRequest, peerKey } from "./peer.ts";

export interface ConnectServer {
  port: number;
  /** Stops accepting connections and lets requests in flight finish. */
  close(): Promise<void>;
  /** Ends every connection now. */
  destroy(): void;
}

/**
 * Serves a service over Connect, gRPC-Web and gRPC with connect-node on one
 * cleartext port that speaks both HTTP/1.1 (Connect with JSON or binary,
 * gRPC-Web from browsers, curl) and HTTP/2 with prior knowledge. Node 20's
 * http2 server cannot fall back to HTTP/1.1 without TLS, so each connection's
 * first bytes decide: the HTTP/2 preface starts with "PRI", which no HTTP/1
 * method does.
 */
export async function listenConnect<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  address: { host: string; port: number },
  options: { readMaxBytes: number; shutdownSignal: AbortSignal },
): Promise<ConnectServer> {
  const handler = connectNodeAdapter({
    routes: (router) => router.service(service, impl),
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    contextValues: (req) => createContextValues().set(peerKey, peerFromNodeRequest(req)),
  });
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("readable", () => {
      const head: Buffer | null = socket.read();
      if (head === null) return;
      socket.unshift(head);
      (head.subarray(0, 3).toString("latin1") === "PRI" ? h2 : h1).emit("connection", socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      h1.closeIdleConnections();
      for (const s of sessions) s.close();
      // HTTP/1.1 keep-alive connections that are busy close after their response.
      h1.on("request", (_req, res) => res.setHeader("connection", "close"));
      await closed;
    },
    destroy: () => {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}
