import { generateKeyPairSync, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { Errors } from "@scaleway/sdk-client";
import type { Secretv1beta1 } from "@scaleway/sdk-secret";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type CompatServer, describeOnBackends, startCompatServer } from "./support/backends.ts";
import { adminOf, createProject, createScalewayKey, Role } from "./support/coffer.ts";
import {
  base64,
  bytesOf,
  refusal,
  type ScalewaySecrets,
  scalewaySecrets,
} from "./support/scaleway.ts";

/**
 * Payloads through the Scaleway SDK: each secret type's rule (a valid
 * payload stored and read back byte for byte, an invalid one refused naming
 * `data` and never quoting it) and the 64 KiB limit at its edge.
 */

// A self-signed P-256 certificate (CN=coffer-test-fixture), the one the
// server's payload tests use. Only public material.
const CERT = `-----BEGIN CERTIFICATE-----
MIIBkjCCATmgAwIBAgIUdpvCAKn1NZFyIgryixMvKBDfGkgwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTY29mZmVyLXRlc3QtZml4dHVyZTAgFw0yNjExMjYxMjE5MDNa
GA8yMTI2MTEwMjEyMTkwM1owHjEcMBoGA1UEAwwTY29mZmVyLXRlc3QtZml4dHVy
ZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCToZ4VKCWamvZSUcsV9it8aA6uO
w6c+7FDd7Cy1WNnYVx26x1OfBQjMSXqcP1uvyl1l5zb0p9xeQSGt9V+KHzKjUzBR
MB0GA1UdDgQWBBQlY9ErC93AJIwt5bCE2UPgYm8rzzAfBgNVHSMEGDAWgBQlY9Er
C93AJIwt5bCE2UPgYm8rzzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA
MEQCIEDlS+gIm7jKxe/++3nM/zICR6SUXydYtZGB12i5UCcNAiAm2zLmFEyCrhnb
ELgQBTprkrs9tBpluIR5paV0e0ZnEw==
-----END CERTIFICATE-----
`;

/** A fresh private key in PKCS#8 PEM, as an ssh_key or a certificate's key holds one. */
const privateKeyPem = () =>
  generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();

/** A value that must never appear in a refusal: it stands for a password. */
const MARKER = `leak-${randomBytes(8).toString("hex")}`;

const json = (value: unknown) => JSON.stringify(value);

/** Per type: a payload it takes, and one it refuses (holding MARKER). */
const CASES: {
  type: Secretv1beta1.SecretType;
  valid: string | Uint8Array;
  invalid: string;
  field: string;
}[] = [
  {
    type: "opaque",
    valid: randomBytes(300),
    // Empty: the one payload an opaque secret refuses.
    invalid: "",
    field: "data",
  },
  {
    type: "certificate",
    valid: `${CERT}${privateKeyPem()}`,
    invalid: `-----BEGIN CERTIFICATE-----\n${MARKER}\n-----END CERTIFICATE-----\n`,
    field: "data",
  },
  {
    type: "key_value",
    valid: json({ user: "app", retries: 3, verbose: true }),
    invalid: json({ nested: { password: MARKER } }),
    field: "data.nested",
  },
  {
    type: "basic_credentials",
    valid: json({ username: "app", password: "s3cret!" }),
    invalid: json({ username: "app", pasword: MARKER }),
    field: "data.password",
  },
  {
    type: "database_credentials",
    valid: json({
      engine: "postgres",
      username: "app",
      password: "s3cret!",
      host: "db.internal",
      dbname: "app",
      port: "5432",
    }),
    invalid: json({
      engine: "postgres",
      username: "app",
      password: MARKER,
      host: "db.internal",
      dbname: "app",
      port: "five",
    }),
    field: "data.port",
  },
  {
    type: "ssh_key",
    valid: json({ ssh_private_key: privateKeyPem() }),
    invalid: json({ ssh_private_key: MARKER }),
    field: "data.ssh_private_key",
  },
];

describeOnBackends("Scaleway SDK: payloads", (backend) => {
  let coffer: CompatServer | undefined;
  let api: ScalewaySecrets;

  beforeAll(async () => {
    coffer = await startCompatServer(backend, "payloads");
    const admin = adminOf(coffer.server);
    const projectId = await createProject(admin);
    const key = await createScalewayKey(admin, projectId, Role.FULL_ACCESS);
    api = scalewaySecrets(coffer.server, key, projectId);
  });

  afterAll(async () => {
    await coffer?.stop();
  });

  for (const { type, valid, invalid, field } of CASES) {
    it(`${type}: a valid payload is stored and read back; an invalid one is refused naming ${field}`, async () => {
      const secret = await api.createSecret({
        name: type.replaceAll("_", "-"),
        path: "/types",
        type,
        protected: false,
      });
      expect(secret.type).toBe(type);
      const bytes = Buffer.from(valid);
      const version = await api.createSecretVersion({
        secretId: secret.id,
        data: base64(bytes),
        dataCrc32: crc32(bytes),
      });
      expect(version.revision).toBe(1);
      const access = await api.accessSecretVersion({ secretId: secret.id, revision: "1" });
      expect(access.type).toBe(type);
      expect(access.dataCrc32).toBe(crc32(bytes));
      expect(bytesOf(access.data).equals(bytes)).toBe(true);

      const err = await refusal(
        api.createSecretVersion({ secretId: secret.id, data: base64(invalid) }),
      );
      expect(err).toBeInstanceOf(Errors.InvalidArgumentsError);
      const { details } = err as Errors.InvalidArgumentsError;
      expect(details.map((d) => d.argumentName)).toEqual([field]);
      expect(field === "data" || field.startsWith("data.")).toBe(true);
      expect(JSON.stringify((err as Errors.ScalewayError).body)).not.toContain(MARKER);
      expect((await api.getSecret({ secretId: secret.id })).versionCount).toBe(1);
    });
  }

  it("takes a 65,536-byte payload and refuses 65,537 bytes naming data", async () => {
    const { id: secretId } = await api.createSecret({
      name: "largest",
      path: "/limits",
      protected: false,
    });
    const largest = randomBytes(65_536);
    const version = await api.createSecretVersion({
      secretId,
      data: base64(largest),
      dataCrc32: crc32(largest),
    });
    expect(version.revision).toBe(1);
    const access = await api.accessSecretVersion({ secretId, revision: "1" });
    expect(bytesOf(access.data).equals(largest)).toBe(true);

    const tooLarge = randomBytes(65_537);
    const err = await refusal(api.createSecretVersion({ secretId, data: base64(tooLarge) }));
    expect(err).toBeInstanceOf(Errors.InvalidArgumentsError);
    const { details } = err as Errors.InvalidArgumentsError;
    expect(details.map((d) => d.argumentName)).toEqual(["data"]);
    expect(details[0]?.helpMessage).toContain("65536");
    expect((await api.getSecret({ secretId })).versionCount).toBe(1);
  });

  it("refuses a request body past the port's limit (512 KiB) unread, with status 413", async () => {
    const { id: secretId } = await api.createSecret({
      name: "huge",
      path: "/limits",
      protected: false,
    });
    const err = await refusal(
      api.createSecretVersion({ secretId, data: base64(randomBytes(1024 * 1024)) }),
    );
    // Not an argument error: the body was not read, so no field can be named.
    expect(err).toBeInstanceOf(Errors.ScalewayError);
    expect(err).toMatchObject({ status: 413 });
    expect(err.message).toContain("64 KiB");
    expect((await api.getSecret({ secretId })).versionCount).toBe(0);
  });
});
