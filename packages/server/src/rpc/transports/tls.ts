import * as grpc from "@grpc/grpc-js";

/** A server's TLS material, PEM-encoded. */
export interface ServerTls {
  /** Certificate chain, leaf first. */
  cert: Buffer;
  key: Buffer;
  /** When set, mutual TLS: clients must present a certificate signed by one of these CAs. */
  clientCa?: Buffer;
}

/**
 * grpc-js credentials: cleartext without TLS material; with it, TLS, and
 * with a client CA, mutual TLS (grpc-js then requests a client certificate
 * and fails the handshake when it is missing or not signed by the CA).
 */
export function grpcServerCredentials(tls: ServerTls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ cert_chain: tls.cert, private_key: tls.key }],
    tls.clientCa !== undefined,
  );
}
