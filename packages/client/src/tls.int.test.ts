import { randomUUID } from "node:crypto";
import { loadConfig } from "@coffer/server";
import { createTestCertificates, serverBackends, type TestServer } from "@coffer/server/testing";
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CofferProtocol, type CofferTlsOptions, createCofferClient } from "./index.ts";

/**
 * The `tls` option of createCofferClient against a real server with TLS and
 * one with mutual TLS, over every protocol and HTTP version: the CA, the
 * certificate and the key must reach Node's TLS for each transport. (The
 * server's own TLS is tested in packages/server, with plain clients.) On
 * PGlite only: the database plays no part.
 */

type Variant = { protocol: CofferProtocol; httpVersion: "1.1" | "2" };
const variants: Variant[] = [
  { protocol: "grpc", httpVersion: "2" },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "connect", httpVersion: "1.1" },
  { protocol: "grpc-web", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "1.1" },
];

const certs = createTestCertificates();
const backend = serverBackends[0];
let tlsServer: TestServer;
let mtlsServer: TestServer;

beforeAll(async () => {
  if (backend === undefined) throw new Error("no server backend");
  const env = { COFFER_TLS_CERT: certs.server.cert.file, COFFER_TLS_KEY: certs.server.key.file };
  [tlsServer, mtlsServer] = await Promise.all([
    backend.start({ tls: loadConfig(env).tls }),
    backend.start({ tls: loadConfig({ ...env, COFFER_TLS_CLIENT_CA: certs.ca.cert.file }).tls }),
  ]);
});

afterAll(async () => {
  await Promise.all([tlsServer?.stop(), mtlsServer?.stop()]);
  certs.remove();
});

/** One ListSecretTypes call (any project) with the admin token: "OK", or the error's message. */
async function call(server: TestServer, v: Variant, tls?: CofferTlsOptions): Promise<string> {
  const port = v.protocol === "grpc" ? server.server.grpcPort : server.server.httpPort;
  const client = createCofferClient({
    url: `https://127.0.0.1:${port}`,
    ...v,
    token: server.adminToken,
    timeoutMs: 5_000,
    ...(tls !== undefined && { tls }),
  });
  try {
    await client.listSecretTypes({ projectId: randomUUID() });
    return "OK";
  } catch (err) {
    return ConnectError.from(err).rawMessage;
  }
}

describe.each(variants)("the tls option over $protocol (HTTP/$httpVersion)", (v) => {
  it("trusts the given CA instead of the system's", async () => {
    expect(await call(tlsServer, v, { ca: certs.ca.cert.pem })).toBe("OK");
    expect(await call(tlsServer, v)).toContain("unable to verify the first certificate");
  });

  it("presents the given client certificate to a server with mutual TLS", async () => {
    const ca = certs.ca.cert.pem;
    const client = { cert: certs.client.cert.pem, key: certs.client.key.pem };
    expect(await call(mtlsServer, v, { ca, ...client })).toBe("OK");
    expect(await call(mtlsServer, v, { ca })).toContain("certificate required");
  });
});
