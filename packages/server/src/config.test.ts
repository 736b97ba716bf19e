import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";
import { generateToken, tokenFromSecret } from "./crypto/tokens.ts";
import { createTestCertificates, type TestCertificates } from "./testing/certs.ts";

const fails = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected loadConfig to fail");
};

describe("loadConfig", () => {
  it("defaults to the embedded database, one region and the documented ports", () => {
    const c = loadConfig({});
    expect(c.grpcListen).toEqual({ host: "127.0.0.1", port: 50051 });
    expect(c.httpListen).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(c.regions).toEqual(["local"]);
    expect(c.databases.local).toEqual({
      driver: "pglite",
      dataDir: path.resolve(".coffer/regions/local"),
    });
    expect(c.masterKeyFile).toBe(path.resolve(".coffer/master-keys.json"));
    expect(c.deletionWindowMs).toBe(7 * 86_400_000);
  });

  it("gives each region its own Postgres database through {region}", () => {
    const c = loadConfig({
      COFFER_REGIONS: "fr-par,nl-ams",
      COFFER_DATABASE_URL: "postgres://db/coffer_{region}",
    });
    expect(c.databases["fr-par"]).toMatchObject({
      driver: "postgres",
      url: "postgres://db/coffer_fr_par",
    });
    expect(c.databases["nl-ams"]).toMatchObject({ url: "postgres://db/coffer_nl_ams" });
    expect(c.masterKeyFile).toBeUndefined();
  });

  it("names every bad setting and the rule it breaks", () => {
    const message = fails({
      COFFER_GRPC_LISTEN: "nope",
      COFFER_DELETION_WINDOW: "7x",
      COFFER_REGIONS: "Fr_Par",
      COFFER_LOG_LEVEL: "loud",
    });
    expect(message).toContain("COFFER_GRPC_LISTEN: must be host:port");
    expect(message).toContain("COFFER_DELETION_WINDOW: must be a duration");
    expect(message).toContain("COFFER_REGIONS:");
    expect(message).toContain("COFFER_LOG_LEVEL:");
    expect(fails({ COFFER_DATABASE_URL: "mysql://x" })).toContain("COFFER_DATABASE_URL:");
    expect(fails({ COFFER_REGIONS: "a,b", COFFER_DATABASE_URL: "postgres://db/coffer" })).toContain(
      "COFFER_DATABASE_URL: with several regions it must contain {region}",
    );
  });

  it("reads a JSON config file under the environment", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "coffer-config-"));
    const file = path.join(dir, "coffer.json");
    writeFileSync(
      file,
      JSON.stringify({ COFFER_REGIONS: "fr-par", COFFER_HTTP_LISTEN: "0.0.0.0:9000" }),
    );
    const c = loadConfig({ COFFER_CONFIG_FILE: file, COFFER_HTTP_LISTEN: "127.0.0.1:9001" });
    expect(c.regions).toEqual(["fr-par"]);
    expect(c.httpListen.port).toBe(9001);
    writeFileSync(file, JSON.stringify({ COFFER_REGION: "typo" }));
    expect(fails({ COFFER_CONFIG_FILE: file })).toContain('unknown setting "COFFER_REGION"');
  });
});

describe("loadConfig TLS", () => {
  let certs: TestCertificates;
  /** The base64 body of the server's private key, which no message may quote. */
  let keyBody: string;
  const file = (name: string, contents: string) => {
    const f = path.join(certs.dir, name);
    writeFileSync(f, contents);
    return f;
  };
  const tlsFails = (env: Record<string, string>) => {
    const message = fails(env);
    expect(message).not.toContain(keyBody);
    return message;
  };
  beforeAll(() => {
    certs = createTestCertificates();
    keyBody = certs.server.key.pem.toString().split("\n")[1] ?? "";
    expect(keyBody.length).toBeGreaterThan(20);
  });
  afterAll(() => certs?.remove());

  it("is off without settings, on with a certificate and key, mutual with a client CA", () => {
    expect(loadConfig({}).tls).toBeUndefined();
    const env = { COFFER_TLS_CERT: certs.server.cert.file, COFFER_TLS_KEY: certs.server.key.file };
    expect(loadConfig(env).tls).toEqual({ cert: certs.server.cert.pem, key: certs.server.key.pem });
    // A bundle of two CAs.
    const bundle = file(
      "bundle.pem",
      `${certs.otherCa.cert.pem.toString()}${certs.ca.cert.pem.toString()}`,
    );
    expect(loadConfig({ ...env, COFFER_TLS_CLIENT_CA: bundle }).tls?.clientCa?.toString()).toBe(
      `${certs.otherCa.cert.pem.toString()}${certs.ca.cert.pem.toString()}`,
    );
  });

  it("needs the certificate and key together, and TLS for a client CA", () => {
    expect(tlsFails({ COFFER_TLS_KEY: certs.server.key.file })).toContain(
      "COFFER_TLS_CERT: not set, but COFFER_TLS_KEY is",
    );
    expect(tlsFails({ COFFER_TLS_CERT: certs.server.cert.file })).toContain(
      "COFFER_TLS_KEY: not set, but COFFER_TLS_CERT is",
    );
    expect(tlsFails({ COFFER_TLS_CLIENT_CA: certs.ca.cert.file })).toContain(
      "COFFER_TLS_CLIENT_CA: mutual TLS needs TLS",
    );
  });

  it("names the setting and file it cannot read or parse, never quoting the key", () => {
    const env = { COFFER_TLS_CERT: certs.server.cert.file, COFFER_TLS_KEY: certs.server.key.file };
    const missing = path.join(certs.dir, "missing.pem");
    expect(tlsFails({ ...env, COFFER_TLS_CERT: missing })).toContain(
      `COFFER_TLS_CERT: cannot read ${missing} (ENOENT)`,
    );
    expect(tlsFails({ ...env, COFFER_TLS_KEY: certs.dir })).toContain(
      `COFFER_TLS_KEY: cannot read ${certs.dir} (EISDIR)`,
    );
    expect(tlsFails({ ...env, COFFER_TLS_CLIENT_CA: missing })).toContain(
      `COFFER_TLS_CLIENT_CA: cannot read ${missing} (ENOENT)`,
    );
    // The key where the certificate should be.
    expect(tlsFails({ ...env, COFFER_TLS_CERT: certs.server.key.file })).toContain(
      `COFFER_TLS_CERT: ${certs.server.key.file} holds no PEM certificate`,
    );
    const broken = file(
      "broken.pem",
      certs.server.cert.pem.toString().replace(/\n[A-Za-z0-9+/]{8}/, "\nAAAAAAAA"),
    );
    expect(tlsFails({ ...env, COFFER_TLS_CERT: broken })).toContain(
      `COFFER_TLS_CERT: certificate 1 in ${broken} does not parse`,
    );
    // The certificate where the key should be.
    expect(tlsFails({ ...env, COFFER_TLS_KEY: certs.server.cert.file })).toContain(
      `COFFER_TLS_KEY: ${certs.server.cert.file} does not hold an unencrypted PEM private key`,
    );
    const garbage = file("garbage.pem", "not a certificate\n");
    expect(tlsFails({ ...env, COFFER_TLS_CLIENT_CA: garbage })).toContain(
      `COFFER_TLS_CLIENT_CA: ${garbage} holds no PEM certificate`,
    );
  });

  it("refuses an encrypted key and a key that is not the certificate's", () => {
    const env = { COFFER_TLS_CERT: certs.server.cert.file, COFFER_TLS_KEY: certs.server.key.file };
    const encrypted = path.join(certs.dir, "encrypted.key");
    execFileSync("openssl", [
      "pkey",
      "-in",
      certs.server.key.file,
      "-aes256",
      "-passout",
      "pass:secret",
      "-out",
      encrypted,
    ]);
    expect(tlsFails({ ...env, COFFER_TLS_KEY: encrypted })).toContain(
      `COFFER_TLS_KEY: ${encrypted} does not hold an unencrypted PEM private key`,
    );
    expect(tlsFails({ ...env, COFFER_TLS_KEY: certs.client.key.file })).toContain(
      `COFFER_TLS_KEY: the key in ${certs.client.key.file} does not belong to the first certificate in ${certs.server.cert.file}`,
    );
  });

  it("refuses material OpenSSL will not serve with", () => {
    const cert = path.join(certs.dir, "weak.crt");
    const key = path.join(certs.dir, "weak.key");
    // A 512-bit RSA key parses and matches its certificate, but is below
    // OpenSSL's security level.
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:512", "-noenc", "-keyout", key, "-out", cert].concat([
        "-subj",
        "/CN=weak",
        "-days",
        "1",
      ]),
      { stdio: "ignore" },
    );
    expect(tlsFails({ COFFER_TLS_CERT: cert, COFFER_TLS_KEY: key })).toContain(
      `COFFER_TLS_CERT: OpenSSL refuses ${cert} with ${key} (`,
    );
  });

  it("reports every TLS problem at once", () => {
    const missing = path.join(certs.dir, "missing.pem");
    const message = tlsFails({
      COFFER_TLS_CERT: missing,
      COFFER_TLS_KEY: certs.server.cert.file,
      COFFER_TLS_CLIENT_CA: certs.server.key.file,
    });
    expect(message).toContain("COFFER_TLS_CERT: cannot read");
    expect(message).toContain("COFFER_TLS_KEY:");
    expect(message).toContain("COFFER_TLS_CLIENT_CA:");
  });
});

describe("COFFER_BOOTSTRAP_TOKEN", () => {
  it("is passed through when it is a Coffer token", () => {
    const { value } = generateToken();
    expect(loadConfig({ COFFER_BOOTSTRAP_TOKEN: value }).bootstrapToken).toBe(value);
    expect(loadConfig({}).bootstrapToken).toBeUndefined();
  });

  it("is refused by name, without repeating the value, when it is not random enough", () => {
    const zero = tokenFromSecret(new Uint8Array(32)).value;
    const message = fails({ COFFER_BOOTSTRAP_TOKEN: zero });
    expect(message).toContain("COFFER_BOOTSTRAP_TOKEN: is not random enough to be an admin token");
    expect(message).toContain("only 1 different characters");
    expect(message).not.toContain(zero.slice(7, 20));
  });

  it("is refused by name, without repeating the value, when malformed", () => {
    const message = fails({ COFFER_BOOTSTRAP_TOKEN: "coffer_not-a-real-token-value" });
    expect(message).toContain("COFFER_BOOTSTRAP_TOKEN: must be a Coffer token");
    expect(message).not.toContain("not-a-real-token-value");
  });
});

describe("limits", () => {
  it("default to 10000 secrets per project, 1000 versions per secret, 200 calls per second", () => {
    expect(loadConfig({}).limits).toEqual({
      secretsPerProject: 10_000,
      versionsPerSecret: 1_000,
      requestsPerSecond: 200,
    });
  });

  it("are read from their settings, and a rate of 0 is allowed (no limit)", () => {
    const c = loadConfig({
      COFFER_MAX_SECRETS_PER_PROJECT: "50",
      COFFER_MAX_VERSIONS_PER_SECRET: "7",
      COFFER_RATE_LIMIT_RPS: "0",
    });
    expect(c.limits).toEqual({ secretsPerProject: 50, versionsPerSecret: 7, requestsPerSecond: 0 });
  });

  it("refuse what is not a whole number in range, naming each setting", () => {
    const message = fails({
      COFFER_MAX_SECRETS_PER_PROJECT: "0",
      COFFER_MAX_VERSIONS_PER_SECRET: "many",
      COFFER_RATE_LIMIT_RPS: "-1",
    });
    expect(message).toMatch(/COFFER_MAX_SECRETS_PER_PROJECT: /);
    expect(message).toMatch(/COFFER_MAX_VERSIONS_PER_SECRET: /);
    expect(message).toMatch(/COFFER_RATE_LIMIT_RPS: /);
  });
});

describe("bounds on refused callers and the audit trail", () => {
  it("default to 20 refused calls per second per address and a year of audit events", () => {
    const c = loadConfig({});
    expect(c.peerRateLimitRps).toBe(20);
    expect(c.auditRetentionMs).toBe(366 * 86_400_000);
  });

  it("are read from COFFER_PEER_RATE_LIMIT_RPS and COFFER_AUDIT_RETENTION", () => {
    const c = loadConfig({ COFFER_PEER_RATE_LIMIT_RPS: "0", COFFER_AUDIT_RETENTION: "90d" });
    expect(c.peerRateLimitRps).toBe(0);
    expect(c.auditRetentionMs).toBe(90 * 86_400_000);
  });

  it("refuse a negative rate and a retention under a day, naming each setting", () => {
    const message = fails({ COFFER_PEER_RATE_LIMIT_RPS: "-5", COFFER_AUDIT_RETENTION: "12h" });
    expect(message).toMatch(/COFFER_PEER_RATE_LIMIT_RPS: /);
    expect(message).toMatch(/COFFER_AUDIT_RETENTION: must be a duration/);
  });
});

describe("COFFER_JWKS_MAX_AGE and COFFER_JWKS_REFRESH_FLOOR", () => {
  it("keep fetched keys 10 minutes at most, and refresh an issuer's keys at most every 30 s", () => {
    const c = loadConfig({});
    expect(c.jwksMaxAgeMs).toBe(600_000);
    expect(c.jwksRefreshFloorMs).toBe(30_000);
  });

  it("are read as durations, and refused by name when out of range", () => {
    const c = loadConfig({ COFFER_JWKS_MAX_AGE: "1m", COFFER_JWKS_REFRESH_FLOOR: "0s" });
    expect(c.jwksMaxAgeMs).toBe(60_000);
    expect(c.jwksRefreshFloorMs).toBe(0);
    const message = fails({ COFFER_JWKS_MAX_AGE: "100ms", COFFER_JWKS_REFRESH_FLOOR: "2h" });
    expect(message).toMatch(/COFFER_JWKS_MAX_AGE: /);
    expect(message).toMatch(/COFFER_JWKS_REFRESH_FLOOR: /);
  });
});

describe("COFFER_ACCESS_BATCH_MAX", () => {
  it("caps a batch of accesses at 64 by default, and takes 1 to 1024", () => {
    expect(loadConfig({}).accessBatchMax).toBe(64);
    expect(loadConfig({ COFFER_ACCESS_BATCH_MAX: "1" }).accessBatchMax).toBe(1);
    expect(loadConfig({ COFFER_ACCESS_BATCH_MAX: "1024" }).accessBatchMax).toBe(1024);
    for (const bad of ["0", "1025", "2.5", "many"]) {
      expect(fails({ COFFER_ACCESS_BATCH_MAX: bad })).toMatch(/COFFER_ACCESS_BATCH_MAX: /);
    }
  });
});

describe("COFFER_CONSOLE", () => {
  it("serves the web console by default, and not when off", () => {
    expect(loadConfig({}).console).toEqual({});
    expect(loadConfig({ COFFER_CONSOLE: "on" }).console).toEqual({});
    expect(loadConfig({ COFFER_CONSOLE: "off" }).console).toBeUndefined();
  });

  it("is refused by name when neither on nor off", () => {
    expect(fails({ COFFER_CONSOLE: "yes" })).toMatch(/COFFER_CONSOLE: .*"on".*"off"/);
  });
});

describe("connection limits", () => {
  it("default to 10 s for headers, 30 s between body bytes, 5 min idle, 1000 connections, 100 streams, 64 MiB of bodies", () => {
    expect(loadConfig({}).connections).toEqual({
      headersTimeoutMs: 10_000,
      bodyTimeoutMs: 30_000,
      idleTimeoutMs: 300_000,
      maxConnections: 1_000,
      maxStreamsPerConnection: 100,
      maxBufferedRequestBytes: 64 * 1024 * 1024,
    });
  });

  it("are read from their settings, and refused by name when out of range", () => {
    expect(
      loadConfig({
        COFFER_HEADERS_TIMEOUT: "2s",
        COFFER_BODY_TIMEOUT: "5s",
        COFFER_IDLE_TIMEOUT: "1m",
        COFFER_MAX_CONNECTIONS: "50",
        COFFER_MAX_STREAMS_PER_CONNECTION: "10",
        COFFER_MAX_BUFFERED_REQUEST_BYTES: "1048576",
      }).connections,
    ).toEqual({
      headersTimeoutMs: 2_000,
      bodyTimeoutMs: 5_000,
      idleTimeoutMs: 60_000,
      maxConnections: 50,
      maxStreamsPerConnection: 10,
      maxBufferedRequestBytes: 1_048_576,
    });
    const message = fails({
      COFFER_HEADERS_TIMEOUT: "0s",
      COFFER_MAX_CONNECTIONS: "0",
      COFFER_MAX_STREAMS_PER_CONNECTION: "0",
      // Less than one request of the largest size (512 KiB).
      COFFER_MAX_BUFFERED_REQUEST_BYTES: "1000",
    });
    for (const name of [
      "COFFER_HEADERS_TIMEOUT",
      "COFFER_MAX_CONNECTIONS",
      "COFFER_MAX_STREAMS_PER_CONNECTION",
      "COFFER_MAX_BUFFERED_REQUEST_BYTES",
    ]) {
      expect(message).toContain(`${name}:`);
    }
  });
});
