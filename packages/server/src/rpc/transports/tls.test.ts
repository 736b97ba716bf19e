import http from "node:http";
import https from "node:https";
import { create, toBinary } from "@bufbuild/protobuf";
import { ListSecretTypesRequestSchema, SecretService } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../config.ts";
import type { RunningServer } from "../../server.ts";
import {
  ADMIN_PRINCIPAL,
  createTestToken,
  PROJECT,
  startTestServer,
} from "../../testing/backends.ts";
import { createTestCertificates, type TestCertificates } from "../../testing/certs.ts";
import { type Protocol, secretClient, type TransportOptions } from "../../testing/clients.ts";

/**
 * Every check makes the same call without a token: a server that got the
 * request answers UNAUTHENTICATED, which proves the TLS handshake succeeded;
 * anything else is the transport failing before the server saw a request.
 */
const REACHED = /^Unauthenticated: /;
/** How connect-node reports a connection it could not set up or lost. */
const TRANSPORT_FAILURE = /^(Internal|Unavailable|Canceled|Aborted): /;

/** What a client observed: "OK", or the error's code name and message. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "OK";
  } catch (err) {
    const e = ConnectError.from(err);
    return `${Code[e.code]}: ${e.rawMessage}`;
  }
}

interface Variant {
  protocol: Protocol;
  httpVersion: "1.1" | "2";
}

const variants: Variant[] = [
  { protocol: "grpc", httpVersion: "2" },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "connect", httpVersion: "1.1" },
  { protocol: "grpc-web", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "1.1" },
];

function portOf(server: RunningServer, protocol: Protocol): number {
  return protocol === "grpc" ? server.grpcPort : server.httpPort;
}

/** One call of ListSecretTypes through a connect-node client. */
function call(
  server: RunningServer,
  v: Variant,
  options: Partial<TransportOptions> & { host?: string; scheme?: string } = {},
): Promise<string> {
  const { host = "127.0.0.1", scheme = "https", ...rest } = options;
  const client = secretClient({
    url: `${scheme}://${host}:${portOf(server, v.protocol)}`,
    protocol: v.protocol,
    httpVersion: v.httpVersion,
    timeoutMs: 5_000,
    ...rest,
  });
  return outcome(client.listSecretTypes({ projectId: PROJECT }));
}

/** One call of ListSecretTypes through a plain grpc-js client. */
function grpcJsCall(
  server: RunningServer,
  credentials: grpc.ChannelCredentials,
): Promise<{ code: grpc.status; details: string }> {
  const client = new grpc.Client(`127.0.0.1:${server.grpcPort}`, credentials);
  const request = Buffer.from(
    toBinary(
      ListSecretTypesRequestSchema,
      create(ListSecretTypesRequestSchema, { projectId: PROJECT }),
    ),
  );
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/${SecretService.typeName}/ListSecretTypes`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + 5_000 },
      (err) => {
        client.close();
        resolve(
          err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" },
        );
      },
    );
  });
}

let certs: TestCertificates;
let tlsServer: RunningServer;
let mtlsServer: RunningServer;

beforeAll(async () => {
  certs = createTestCertificates();
  const tls = {
    COFFER_TLS_CERT: certs.server.cert.file,
    COFFER_TLS_KEY: certs.server.key.file,
  };
  [tlsServer, mtlsServer] = await Promise.all([
    // A long grace period, so that the shutdown test sees a graceful close
    // rather than the forced one.
    startTestServer({ tls: loadConfig(tls).tls, shutdownGraceMs: 60_000 }),
    startTestServer({
      tls: loadConfig({ ...tls, COFFER_TLS_CLIENT_CA: certs.ca.cert.file }).tls,
    }),
  ]);
});

afterAll(async () => {
  await Promise.all([tlsServer?.stop(), mtlsServer?.stop()]);
  certs?.remove();
});

describe.each(variants)("TLS over $protocol (HTTP/$httpVersion)", (v) => {
  it("serves a client that trusts the CA, by IP address and by name", async () => {
    const tls = { ca: certs.ca.cert.pem };
    expect(await call(tlsServer, v, { tls })).toMatch(REACHED);
    expect(await call(tlsServer, v, { tls, host: "localhost" })).toMatch(REACHED);
  });

  it("is refused by a client that does not trust the CA", async () => {
    const observed = await call(tlsServer, v);
    expect(observed).toMatch(TRANSPORT_FAILURE);
    expect(observed).toContain("unable to verify the first certificate");
    // Trusting another CA is no better.
    expect(await call(tlsServer, v, { tls: { ca: certs.otherCa.cert.pem } })).toMatch(
      TRANSPORT_FAILURE,
    );
  });

  it("refuses a cleartext client", async () => {
    expect(await call(tlsServer, v, { scheme: "http" })).toMatch(TRANSPORT_FAILURE);
  });
});

describe.each(variants)("mutual TLS over $protocol (HTTP/$httpVersion)", (v) => {
  it("serves a client whose certificate the client CA signed", async () => {
    const tls = { ca: certs.ca.cert.pem, cert: certs.client.cert.pem, key: certs.client.key.pem };
    expect(await call(mtlsServer, v, { tls })).toMatch(REACHED);
  });

  it("refuses a client without a certificate", async () => {
    const observed = await call(mtlsServer, v, { tls: { ca: certs.ca.cert.pem } });
    expect(observed).toMatch(TRANSPORT_FAILURE);
    expect(observed).toContain("certificate required");
  });

  it("refuses a client certificate signed by another CA", async () => {
    const tls = {
      ca: certs.ca.cert.pem,
      cert: certs.otherClient.cert.pem,
      key: certs.otherClient.key.pem,
    };
    expect(await call(mtlsServer, v, { tls })).toMatch(TRANSPORT_FAILURE);
  });
});

describe("TLS with a plain grpc-js client", () => {
  it("connects with the CA, and not without it or in cleartext", async () => {
    const ca = certs.ca.cert.pem;
    expect(await grpcJsCall(tlsServer, grpc.credentials.createSsl(ca))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
    expect(await grpcJsCall(tlsServer, grpc.credentials.createSsl())).toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    expect(await grpcJsCall(tlsServer, grpc.credentials.createInsecure())).toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
  });

  it("with mutual TLS, connects only with a certificate the client CA signed", async () => {
    const { ca, client, otherClient } = certs;
    expect(
      await grpcJsCall(
        mtlsServer,
        grpc.credentials.createSsl(ca.cert.pem, client.key.pem, client.cert.pem),
      ),
    ).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    expect(await grpcJsCall(mtlsServer, grpc.credentials.createSsl(ca.cert.pem))).toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    expect(
      await grpcJsCall(
        mtlsServer,
        grpc.credentials.createSsl(ca.cert.pem, otherClient.key.pem, otherClient.cert.pem),
      ),
    ).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});

describe("TLS and bearer tokens", () => {
  it.each(variants)(
    "authenticates a token over mutual TLS ($protocol, HTTP/$httpVersion)",
    async (v) => {
      const token = await createTestToken(mtlsServer.domain, [...ADMIN_PRINCIPAL.grants]);
      const tls = { ca: certs.ca.cert.pem, cert: certs.client.cert.pem, key: certs.client.key.pem };
      expect(await call(mtlsServer, v, { tls, token: token.value })).toBe("OK");
    },
  );
});

describe("TLS and HTTP/1.1 headers past node's limit", () => {
  it("answers 431 with a JSON body, as in cleartext", async () => {
    const huge = "a".repeat(http.maxHeaderSize + 1);
    const answer = await new Promise<{ status?: number; type?: string; body: string }>(
      (resolve, reject) => {
        const req = https.request(
          {
            host: "127.0.0.1",
            port: tlsServer.httpPort,
            path: `/secret-manager/v1beta1/regions/local/secrets?name=${huge}`,
            ca: certs.ca.cert.pem,
          },
          (res) => {
            let body = "";
            res.on("data", (c) => {
              body += c;
            });
            res.on("end", () =>
              resolve({ status: res.statusCode, type: res.headers["content-type"], body }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      },
    );
    expect(answer.status).toBe(431);
    expect(answer.type).toBe("application/json");
    expect(JSON.parse(answer.body)).toMatchObject({ type: "invalid_request_error" });
  });
});

describe("TLS shutdown", () => {
  it("closes gracefully with idle HTTP/1.1, HTTP/2 and gRPC connections open", async () => {
    const tls = { ca: certs.ca.cert.pem };
    for (const v of variants) expect(await call(tlsServer, v, { tls })).toMatch(REACHED);
    const started = Date.now();
    await tlsServer.stop();
    // The grace period is 60 s: a stop this quick did not wait for it.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await call(tlsServer, variants[1] as Variant, { tls })).toMatch(TRANSPORT_FAILURE);
  });
});
