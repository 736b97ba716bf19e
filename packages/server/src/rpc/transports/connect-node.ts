import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { type ConnectRouter, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { peerFromNodeRequest, peerKey } from "./peer.ts";
import type { ServerTls } from "./tls.ts";
import { refuseUndecodable } from "./undecodable.ts";

/**
 * Idle HTTP/1.1 connections stay open for 65 s, not Node's 5 s. A client
 * that reuses a keep-alive connection just as the server closes it gets
 * EPIPE or ECONNRESET, which no client can safely retry for a non-idempotent
 * call; a longer idle window (longer than the usual 60 s of load balancers)
 * makes that race rare. The header timeout must stay above it.
 */
const H1_TIMEOUTS = { keepAliveTimeout: 65_000, headersTimeout: 70_000 };

export interface ConnectServer {
  port: number;
  /** Stops accepting connections and lets requests in flight finish. */
  close(): Promise<void>;
  /** Ends every connection now. */
  destroy(): void;
}

/**
 * Serves services over Connect, gRPC-Web and gRPC with connect-node on one
 * cleartext port that speaks both HTTP/1.1 (Connect with JSON or binary,
 * gRPC-Web from browsers, curl) and HTTP/2 with prior knowledge. Node 20's
 * http2 server cannot fall back to HTTP/1.1 without TLS, so each connection's
 * first bytes decide: the HTTP/2 preface starts with "PRI", which no HTTP/1
 * method does.
 *
 * With `tls`, the port speaks only TLS instead, and ALPN picks HTTP/2 or
 * HTTP/1.1; with `tls.clientCa`, only to clients whose certificate it signed.
 */
export async function listenConnect(
  /** Registers every service served, e.g. `(r) => r.service(SecretService, impl)`. */
  routes: (router: ConnectRouter) => void,
  address: { host: string; port: number },
  options: { readMaxBytes: number; shutdownSignal: AbortSignal; tls?: ServerTls | undefined },
): Promise<ConnectServer> {
  const handler = connectNodeAdapter({
    routes: (router) => {
      routes(router);
      // connect-node reads `router.handlers` after this returns.
      router.handlers.splice(
        0,
        router.handlers.length,
        ...router.handlers.map((h) => refuseUndecodable(h, options.readMaxBytes)),
      );
    },
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    contextValues: (req) => createContextValues().set(peerKey, peerFromNodeRequest(req)),
  });
  if (options.tls !== undefined) return listenTls(handler, address, options.tls);
  const h1 = http.createServer(H1_TIMEOUTS, handler);
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

/**
 * One TLS port for HTTP/2 and HTTP/1.1, chosen by ALPN (a client that offers
 * none gets HTTP/1.1). A client that fails the handshake, for want of a
 * certificate signed by the client CA, never reaches the handler.
 */
async function listenTls(
  handler: ReturnType<typeof connectNodeAdapter>,
  address: { host: string; port: number },
  tls: ServerTls,
): Promise<ConnectServer> {
  const server = http2.createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      ...(tls.clientCa !== undefined && {
        ca: tls.clientCa,
        requestCert: true,
        rejectUnauthorized: true,
      }),
    },
    handler,
  );
  // The raw TCP sockets, so that destroy() also ends connections still in
  // their handshake.
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      // With allowHTTP1, close() also closes idle HTTP/1.1 connections.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      // HTTP/1.1 keep-alive connections that are busy close after their
      // response; HTTP/2 forbids the header (its sessions got a GOAWAY).
      server.on("request", (req, res) => {
        if (req.httpVersionMajor === 1) res.setHeader("connection", "close");
      });
      await closed;
    },
    destroy: () => {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}
