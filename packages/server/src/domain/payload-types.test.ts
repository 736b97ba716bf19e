import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runUnless } from "../testing/skip.ts";
import { DomainError } from "./errors.ts";
import { isSecretKind, SECRET_KINDS, type SecretKind, validatePayload } from "./payload-types.ts";

const MARKER = "S3CR3T-MARKER";

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function json(value: unknown): Uint8Array {
  return bytes(JSON.stringify(value));
}

/** Validates, expects an invalid_argument on `field`, and returns its message. */
function invalidMessage(kind: SecretKind, data: Uint8Array, field: string): string {
  try {
    validatePayload(kind, data);
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    const domainError = error as DomainError;
    expect(domainError.kind).toBe("invalid_argument");
    expect(domainError.field).toBe(field);
    expect(domainError.message.startsWith(`${field}: `)).toBe(true);
    return domainError.message;
  }
  throw new Error(`expected ${kind} payload to be rejected on ${field}`);
}

function hasTool(command: string, versionArgs: string[]): boolean {
  return spawnSync(command, versionArgs, { stdio: "ignore" }).error === undefined;
}

const hasOpenssl = hasTool("openssl", ["version"]);
const hasSshKeygen = hasTool("ssh-keygen", ["-?"]);
const needsOpenssl = runUnless(hasOpenssl ? undefined : "needs the openssl command");
const needsSshKeygen = runUnless(hasSshKeygen ? undefined : "needs the ssh-keygen command");

// A self-signed P-256 certificate (CN=coffer-test-fixture), embedded so the
// certificate tests run where openssl is not installed. Only public material.
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

const CSR = `-----BEGIN CERTIFICATE REQUEST-----
MIHVMHwCAQAwGjEYMBYGA1UEAwwPY29mZmVyLXRlc3QtY3NyMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAEJOhnhUoJZqa9lJRyxX2K3xoDq47Dpz7sUN3sLLVY2dhX
HbrHU58FCMxJepw/W6/KXWXnNvSn3F5BIa31X4ofMqAAMAoGCCqGSM49BAMCA0kA
MEYCIQDeIjlwbVGJHfWkRuF+F+//DdFJfzmAfGpm8LSek8xTEAIhAPSIMl+PH164
UDIpYOi8AzPjie+mPkqJ8PaUtvat2N/N
-----END CERTIFICATE REQUEST-----
`;

// What `openssl ecparam -genkey` puts before an EC key: DER, but not a SEQUENCE.
const EC_PARAMETERS = `-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
`;

function pem(label: string, der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString("base64")
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed25519 = generateKeyPairSync("ed25519");

const keys = {
  rsaPkcs8: rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  rsaPkcs1: rsa.privateKey.export({ type: "pkcs1", format: "pem" }) as string,
  rsaPublicSpki: rsa.publicKey.export({ type: "spki", format: "pem" }) as string,
  rsaPublicPkcs1: rsa.publicKey.export({ type: "pkcs1", format: "pem" }) as string,
  ecSec1: ec.privateKey.export({ type: "sec1", format: "pem" }) as string,
  ecPkcs8: ec.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  ed25519Pkcs8: ed25519.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  encryptedPkcs8: ec.privateKey.export({
    type: "pkcs8",
    format: "pem",
    cipher: "aes-256-cbc",
    passphrase: "test passphrase",
  }) as string,
  // Legacy OpenSSL encryption: Proc-Type/DEK-Info headers, ciphertext body.
  encryptedPkcs1: rsa.privateKey.export({
    type: "pkcs1",
    format: "pem",
    cipher: "aes-128-cbc",
    passphrase: "test passphrase",
  }) as string,
};

/** An SSH wire-format string: uint32 length, then the bytes. */
function sshString(value: Uint8Array | string): Buffer {
  const body = typeof value === "string" ? Buffer.from(value, "latin1") : Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

/**
 * Builds an unencrypted `openssh-key-v1` Ed25519 key from a node:crypto key,
 * following OpenSSH's PROTOCOL.key, so the OpenSSH path is tested even where
 * ssh-keygen is missing. `tweak` lets tests damage one part.
 */
function openSshEd25519(
  tweak: { magic?: string; check2?: number; trailing?: Uint8Array; keys?: number } = {},
): string {
  const jwk = ed25519.privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const publicKey = Buffer.from(jwk.x ?? "", "base64url");
  const publicBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(publicKey)]);
  const check = Buffer.alloc(8);
  check.writeUInt32BE(0x1234abcd, 0);
  check.writeUInt32BE(tweak.check2 ?? 0x1234abcd, 4);
  let privateSection = Buffer.concat([
    check,
    sshString("ssh-ed25519"),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString("coffer-test"),
  ]);
  const padding = Buffer.from(
    [1, 2, 3, 4, 5, 6, 7].slice(0, (8 - (privateSection.length % 8)) % 8),
  );
  privateSection = Buffer.concat([privateSection, padding]);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(tweak.keys ?? 1);
  const blob = Buffer.concat([
    Buffer.from(tweak.magic ?? "openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    count,
    sshString(publicBlob),
    sshString(privateSection),
    tweak.trailing ?? Buffer.alloc(0),
  ]);
  return pem("OPENSSH PRIVATE KEY", blob);
}

function sshKey(key: string): Uint8Array {
  return json({ ssh_private_key: key });
}

describe("SecretKind", () => {
  it("lists the six types", () => {
    expect(SECRET_KINDS).toEqual([
      "opaque",
      "certificate",
      "key_value",
      "basic_credentials",
      "database_credentials",
      "ssh_key",
    ]);
    expect(isSecretKind("key_value")).toBe(true);
    expect(isSecretKind("password")).toBe(false);
  });
});

describe("payload size", () => {
  it("accepts 1 and 65536 bytes and refuses 0 and 65537, for every type", () => {
    expect(() => validatePayload("opaque", new Uint8Array(1))).not.toThrow();
    expect(() => validatePayload("opaque", new Uint8Array(65536))).not.toThrow();
    for (const kind of SECRET_KINDS) {
      expect(invalidMessage(kind, new Uint8Array(0), "data")).toBe(
        "data: must be 1 to 65536 bytes (got 0)",
      );
      expect(invalidMessage(kind, new Uint8Array(65537), "data")).toBe(
        "data: must be 1 to 65536 bytes (got 65537)",
      );
    }
  });

  it("accepts a 65536-byte JSON payload", () => {
    const prefix = '{"k":"';
    const data = bytes(`${prefix}${"v".repeat(65536 - prefix.length - 2)}"}`);
    expect(data.byteLength).toBe(65536);
    expect(() => validatePayload("key_value", data)).not.toThrow();
  });

  it("uses the field name it is given", () => {
    try {
      validatePayload("opaque", new Uint8Array(0), "first_version.data");
      expect.unreachable();
    } catch (error) {
      expect((error as DomainError).field).toBe("first_version.data");
      expect((error as DomainError).message).toBe(
        "first_version.data: must be 1 to 65536 bytes (got 0)",
      );
    }
  });
});

describe("opaque", () => {
  it("accepts any bytes, including invalid UTF-8", () => {
    expect(() => validatePayload("opaque", new Uint8Array([0xff, 0xfe, 0x00, 0x80]))).not.toThrow();
    expect(() => validatePayload("opaque", bytes("plain text"))).not.toThrow();
  });
});

describe("UTF-8", () => {
  it("is required for every structured type", () => {
    const notUtf8 = new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]);
    for (const kind of SECRET_KINDS.filter((k) => k !== "opaque")) {
      expect(invalidMessage(kind, notUtf8, "data")).toBe("data: must be UTF-8 text");
    }
  });
});

describe("certificate", () => {
  it("never quotes a non-standard PEM label: it is payload text", () => {
    const label = "pm592f702f437219a1";
    const cases = [
      `-----BEGIN ${label}-----\n!!!!\n-----END ${label}-----\n`,
      `-----BEGIN ${label}-----\nAAAA\n-----END OTHER-----\n`,
      `-----BEGIN ${label}----- trailing\nAAAA\n-----END ${label}-----\n`,
    ];
    for (const text of cases) {
      const message = invalidMessage("certificate", new TextEncoder().encode(text), "data");
      expect(message).not.toContain(label);
      expect(message).toContain("a non-standard label");
    }
  });

  it("accepts a certificate", () => {
    expect(() => validatePayload("certificate", bytes(CERT))).not.toThrow();
  });

  it("accepts a chain with keys of every kind, in any order", () => {
    const bundle = [
      keys.rsaPkcs8,
      CERT,
      CERT,
      keys.rsaPkcs1,
      keys.rsaPublicSpki,
      keys.rsaPublicPkcs1,
      EC_PARAMETERS,
      keys.ecSec1,
      keys.ecPkcs8,
      keys.ed25519Pkcs8,
      CSR,
    ].join("\n\n");
    expect(() => validatePayload("certificate", bytes(`\n  ${bundle}\n\n`))).not.toThrow();
  });

  it("accepts encrypted private keys without a passphrase", () => {
    expect(keys.encryptedPkcs1).toContain("Proc-Type: 4,ENCRYPTED");
    expect(() =>
      validatePayload("certificate", bytes(CERT + keys.encryptedPkcs8 + keys.encryptedPkcs1)),
    ).not.toThrow();
  });

  it("accepts CRLF line endings", () => {
    expect(() =>
      validatePayload("certificate", bytes((CERT + keys.ecSec1).replaceAll("\n", "\r\n"))),
    ).not.toThrow();
  });

  it("accepts other labels holding DER", () => {
    expect(() => validatePayload("certificate", bytes(CSR))).not.toThrow();
    expect(() =>
      validatePayload("certificate", bytes(pem("X509 CRL", new Uint8Array([0x30, 0x03, 2, 1, 5])))),
    ).not.toThrow();
  });

  it("requires at least one PEM block", () => {
    expect(invalidMessage("certificate", bytes(" \n\t\n"), "data")).toBe(
      'data: must hold one or more PEM blocks ("-----BEGIN CERTIFICATE-----" ...)',
    );
  });

  it("refuses text outside the blocks, giving the line and not the text", () => {
    const before = invalidMessage("certificate", bytes(`${MARKER}\n${CERT}`), "data");
    expect(before).toBe(
      "data: must hold only PEM blocks and whitespace (unexpected text on line 1)",
    );
    const between = invalidMessage("certificate", bytes(`${CERT}${MARKER}\n${CERT}`), "data");
    expect(between).toBe(
      "data: must hold only PEM blocks and whitespace (unexpected text on line 12)",
    );
    expect(invalidMessage("certificate", bytes(`${CERT}x`), "data")).toContain(
      "unexpected text on line 12",
    );
  });

  it("refuses a block whose END does not match its BEGIN", () => {
    const mismatched = CERT.replace("END CERTIFICATE", "END PRIVATE KEY");
    expect(invalidMessage("certificate", bytes(CERT + mismatched), "data")).toBe(
      'data: PEM block 2 (CERTIFICATE) must end with "-----END CERTIFICATE-----"',
    );
    const unterminated = CERT.slice(0, CERT.indexOf("-----END"));
    expect(invalidMessage("certificate", bytes(unterminated), "data")).toContain(
      'PEM block 1 (CERTIFICATE) must end with "-----END CERTIFICATE-----"',
    );
  });

  it("refuses a malformed BEGIN line", () => {
    expect(invalidMessage("certificate", bytes("-----BEGIN CERTIFICATE\nAAAA\n"), "data")).toBe(
      "data: PEM block 1 has a malformed BEGIN line (line 1)",
    );
    expect(
      invalidMessage("certificate", bytes("-----BEGIN -----\n-----END -----\n"), "data"),
    ).toContain("malformed BEGIN line");
  });

  it("refuses a body that is not base64", () => {
    const bad = CERT.replace("MIIBkjCC", "MIIB*jCC");
    expect(invalidMessage("certificate", bytes(CERT + bad), "data")).toBe(
      "data: PEM block 2 (CERTIFICATE) does not parse (bad base64)",
    );
    expect(
      invalidMessage(
        "certificate",
        bytes("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
        "data",
      ),
    ).toContain("does not parse");
  });

  it("refuses a certificate that does not parse", () => {
    const garbage = pem("CERTIFICATE", new Uint8Array([0x30, 0x03, 2, 1, 5]));
    expect(invalidMessage("certificate", bytes(CERT + garbage), "data")).toBe(
      "data: PEM block 2 (CERTIFICATE) does not parse",
    );
  });

  it("refuses keys that do not parse", () => {
    // Well-formed base64 of a key cut short: only the key parser can object.
    const der = Buffer.from(keys.ecPkcs8.split("\n").slice(1, -2).join(""), "base64");
    for (const label of ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "PUBLIC KEY"]) {
      expect(invalidMessage("certificate", bytes(pem(label, der.subarray(0, 20))), "data")).toBe(
        `data: PEM block 1 (${label}) does not parse`,
      );
    }
    const truncated = pem("ENCRYPTED PRIVATE KEY", new Uint8Array([0x30, 0x10, 0x01]));
    expect(invalidMessage("certificate", bytes(truncated), "data")).toBe(
      "data: PEM block 1 (ENCRYPTED PRIVATE KEY) does not parse",
    );
  });

  it("refuses other labels that do not hold DER", () => {
    expect(invalidMessage("certificate", bytes(pem("X509 CRL", bytes(MARKER))), "data")).toBe(
      "data: PEM block 1 (X509 CRL) does not parse",
    );
  });

  it("accepts what openssl writes: a chain and its key", needsOpenssl, () => {
    const dir = mkdtempSync(join(tmpdir(), "coffer-pem-"));
    try {
      const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
      run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=coffer-test-ca",
        "-days",
        "1",
      );
      run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=leaf",
      );
      run(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-out",
        "leaf.pem",
        "-days",
        "1",
      );
      const read = (name: string) => readFileSync(join(dir, name), "utf8");
      const bundle = read("leaf.pem") + read("ca.pem") + read("leaf.key") + read("leaf.csr");
      expect(() => validatePayload("certificate", bytes(bundle))).not.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("key_value", () => {
  it("accepts a flat object of strings, numbers and booleans", () => {
    const data = json({ host: "db", port: 5432, tls: true, ratio: 0.5, empty: "" });
    expect(() => validatePayload("key_value", data)).not.toThrow();
  });

  it("accepts an empty object", () => {
    expect(() => validatePayload("key_value", bytes("{}"))).not.toThrow();
    expect(() => validatePayload("key_value", bytes(" { } \n"))).not.toThrow();
  });

  it("refuses JSON that is not an object", () => {
    expect(invalidMessage("key_value", bytes("[1]"), "data")).toBe(
      "data: must be a JSON object (got array)",
    );
    expect(invalidMessage("key_value", bytes("null"), "data")).toBe(
      "data: must be a JSON object (got null)",
    );
    expect(invalidMessage("key_value", bytes('"text"'), "data")).toBe(
      "data: must be a JSON object (got string)",
    );
    expect(invalidMessage("key_value", bytes("42"), "data")).toBe(
      "data: must be a JSON object (got number)",
    );
  });

  it("refuses invalid JSON without quoting it", () => {
    for (const text of [
      `{"password": ${MARKER}}`,
      `{"a": "${MARKER}"`,
      MARKER,
      `{'${MARKER}': 1}`,
    ]) {
      expect(invalidMessage("key_value", bytes(text), "data")).toBe(
        "data: must be a JSON object (invalid JSON)",
      );
    }
  });

  it("names the key whose value is not a string, number or boolean", () => {
    expect(invalidMessage("key_value", json({ host: "db", port: { n: 5432 } }), "data.port")).toBe(
      "data.port: must be a string, number or boolean (got object)",
    );
    expect(invalidMessage("key_value", json({ list: [1, 2] }), "data.list")).toBe(
      "data.list: must be a string, number or boolean (got array)",
    );
    expect(invalidMessage("key_value", json({ nothing: null }), "data.nothing")).toBe(
      "data.nothing: must be a string, number or boolean (got null)",
    );
  });

  it("quotes keys that do not read as field names", () => {
    expect(invalidMessage("key_value", json({ "my key": null }), 'data["my key"]')).toBe(
      'data["my key"]: must be a string, number or boolean (got null)',
    );
  });

  it("never puts a nested value in the message", () => {
    const data = json({ user: "u", password: { nested: MARKER, list: [MARKER] } });
    const message = invalidMessage("key_value", data, "data.password");
    expect(message).not.toContain(MARKER);
    const arrayData = json({ token: [MARKER] });
    expect(invalidMessage("key_value", arrayData, "data.token")).not.toContain(MARKER);
  });
});

describe("basic_credentials", () => {
  it("accepts a username and a password", () => {
    expect(() =>
      validatePayload("basic_credentials", json({ username: "admin", password: MARKER })),
    ).not.toThrow();
  });

  it("requires both fields as strings", () => {
    expect(invalidMessage("basic_credentials", json({ password: MARKER }), "data.username")).toBe(
      "data.username: is required (a string)",
    );
    expect(invalidMessage("basic_credentials", json({ username: "admin" }), "data.password")).toBe(
      "data.password: is required (a string)",
    );
    const message = invalidMessage(
      "basic_credentials",
      json({ username: "admin", password: [MARKER] }),
      "data.password",
    );
    expect(message).toBe("data.password: must be a string (got array)");
  });

  it("refuses unknown fields", () => {
    expect(
      invalidMessage(
        "basic_credentials",
        json({ username: "admin", password: MARKER, foo: MARKER }),
        "data.foo",
      ),
    ).toBe("data.foo: is not a field of basic_credentials (expected username, password)");
  });

  it("refuses anything but an object", () => {
    expect(invalidMessage("basic_credentials", bytes(`["admin","${MARKER}"]`), "data")).toBe(
      "data: must be a JSON object (got array)",
    );
  });
});

describe("database_credentials", () => {
  const valid = {
    engine: "postgres",
    username: "app",
    password: MARKER,
    host: "db.internal",
    dbname: "app",
    port: "5432",
  };

  it("accepts every engine", () => {
    for (const engine of ["postgres", "mysql", "other"]) {
      expect(() =>
        validatePayload("database_credentials", json({ ...valid, engine })),
      ).not.toThrow();
    }
  });

  it("refuses other engines without echoing the value", () => {
    const message = invalidMessage(
      "database_credentials",
      json({ ...valid, engine: MARKER }),
      "data.engine",
    );
    expect(message).toBe("data.engine: must be one of postgres, mysql, other");
  });

  it("accepts ports 0 to 65535 as strings of digits", () => {
    for (const port of ["0", "1", "80", "65535", "05432"]) {
      expect(() => validatePayload("database_credentials", json({ ...valid, port }))).not.toThrow();
    }
  });

  it("refuses other ports", () => {
    for (const port of ["65536", "-1", "80a", "", " 80", "8.0", "99999999999999999999999"]) {
      expect(invalidMessage("database_credentials", json({ ...valid, port }), "data.port")).toBe(
        "data.port: must be a string of digits from 0 to 65535",
      );
    }
    expect(
      invalidMessage("database_credentials", json({ ...valid, port: 5432 }), "data.port"),
    ).toBe("data.port: must be a string (got number)");
  });

  it("requires every field", () => {
    for (const name of ["engine", "username", "password", "host", "dbname", "port"]) {
      const partial: Record<string, string> = { ...valid };
      delete partial[name];
      expect(invalidMessage("database_credentials", json(partial), `data.${name}`)).toBe(
        `data.${name}: is required (a string)`,
      );
    }
  });

  it("refuses unknown fields", () => {
    expect(
      invalidMessage(
        "database_credentials",
        json({ ...valid, sslmode: "require" }),
        "data.sslmode",
      ),
    ).toContain("is not a field of database_credentials");
  });
});

describe("ssh_key", () => {
  it("accepts PEM private keys", () => {
    for (const key of [
      keys.rsaPkcs8,
      keys.rsaPkcs1,
      keys.ecSec1,
      keys.ecPkcs8,
      keys.ed25519Pkcs8,
    ]) {
      expect(() => validatePayload("ssh_key", sshKey(key))).not.toThrow();
    }
  });

  it("accepts encrypted PEM private keys", () => {
    expect(() => validatePayload("ssh_key", sshKey(keys.encryptedPkcs8))).not.toThrow();
    expect(() => validatePayload("ssh_key", sshKey(keys.encryptedPkcs1))).not.toThrow();
  });

  it("accepts an OpenSSH private key", () => {
    expect(() => validatePayload("ssh_key", sshKey(openSshEd25519()))).not.toThrow();
    expect(() => validatePayload("ssh_key", sshKey(`\n${openSshEd25519()}\n`))).not.toThrow();
  });

  describe("with ssh-keygen", needsSshKeygen, () => {
    let dir = "";
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "coffer-ssh-"));
    });
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    function keygen(name: string, ...args: string[]): string {
      execFileSync("ssh-keygen", ["-q", "-f", join(dir, name), "-C", "coffer-test", ...args], {
        stdio: "pipe",
      });
      return readFileSync(join(dir, name), "utf8");
    }

    it("agrees that the hand-built OpenSSH key is valid", () => {
      const file = join(dir, "built");
      writeFileSync(file, openSshEd25519(), { mode: 0o600 });
      const publicKey = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" });
      expect(publicKey).toMatch(/^ssh-ed25519 /);
    });

    it("accepts keys ssh-keygen writes, plain and encrypted", () => {
      const generated = [
        keygen("ed25519", "-t", "ed25519", "-N", ""),
        keygen("rsa", "-t", "rsa", "-b", "2048", "-N", ""),
        keygen("ecdsa", "-t", "ecdsa", "-N", ""),
        keygen("ed25519-enc", "-t", "ed25519", "-N", "test passphrase", "-a", "1"),
        keygen(
          "ed25519-aead",
          "-t",
          "ed25519",
          "-N",
          "pw",
          "-a",
          "1",
          "-Z",
          "chacha20-poly1305@openssh.com",
        ),
        keygen("rsa-pem", "-t", "rsa", "-b", "2048", "-N", "", "-m", "PEM"),
      ];
      expect(generated[0]).toContain("-----BEGIN OPENSSH PRIVATE KEY-----");
      for (const key of generated) {
        expect(() => validatePayload("ssh_key", sshKey(key))).not.toThrow();
      }
    });
  });

  it("refuses OpenSSH blobs with a bad structure", () => {
    const field = "data.ssh_private_key";
    expect(
      invalidMessage("ssh_key", sshKey(openSshEd25519({ magic: "openssh-key-v2\0" })), field),
    ).toBe(`${field}: is not a valid OpenSSH private key (missing "openssh-key-v1" header)`);
    expect(invalidMessage("ssh_key", sshKey(openSshEd25519({ check2: 7 })), field)).toContain(
      "(check integers differ)",
    );
    expect(
      invalidMessage("ssh_key", sshKey(openSshEd25519({ trailing: new Uint8Array([0]) })), field),
    ).toContain("(trailing bytes)");
    expect(invalidMessage("ssh_key", sshKey(openSshEd25519({ keys: 0 })), field)).toContain(
      "(bad key count)",
    );
    expect(invalidMessage("ssh_key", sshKey(openSshEd25519({ keys: 2 })), field)).toContain(
      "is not a valid OpenSSH private key",
    );
    const whole = Buffer.from(openSshEd25519().split("\n").slice(1, -2).join(""), "base64");
    expect(
      invalidMessage("ssh_key", sshKey(pem("OPENSSH PRIVATE KEY", whole.subarray(0, 60))), field),
    ).toContain("(truncated)");
  });

  it("refuses PEM blocks that are not private keys", () => {
    expect(invalidMessage("ssh_key", sshKey(keys.rsaPublicSpki), "data.ssh_private_key")).toBe(
      "data.ssh_private_key: must be a PEM or OpenSSH private key (got a PEM block labelled PUBLIC KEY)",
    );
    expect(invalidMessage("ssh_key", sshKey(CERT), "data.ssh_private_key")).toContain(
      "labelled CERTIFICATE",
    );
  });

  it("refuses private keys that do not parse", () => {
    const broken = keys.ed25519Pkcs8.replace(/\n[A-Za-z0-9+/]{8}/, "\nAAAAAAAA");
    expect(invalidMessage("ssh_key", sshKey(broken), "data.ssh_private_key")).toBe(
      "data.ssh_private_key: PEM block 1 (PRIVATE KEY) does not parse",
    );
  });

  it("requires exactly one key", () => {
    expect(invalidMessage("ssh_key", sshKey(""), "data.ssh_private_key")).toBe(
      "data.ssh_private_key: must hold exactly one PEM or OpenSSH private key (got 0 PEM blocks)",
    );
    expect(
      invalidMessage("ssh_key", sshKey(keys.ecPkcs8 + keys.ecPkcs8), "data.ssh_private_key"),
    ).toContain("(got 2 PEM blocks)");
  });

  it("refuses text around the key without echoing it", () => {
    const message = invalidMessage(
      "ssh_key",
      sshKey(`${MARKER}\n${keys.ecPkcs8}`),
      "data.ssh_private_key",
    );
    expect(message).toBe(
      "data.ssh_private_key: must hold only PEM blocks and whitespace (unexpected text on line 1)",
    );
  });

  it("requires exactly the ssh_private_key field, as a string", () => {
    expect(invalidMessage("ssh_key", json({}), "data.ssh_private_key")).toBe(
      "data.ssh_private_key: is required (a string)",
    );
    expect(invalidMessage("ssh_key", json({ ssh_private_key: 1 }), "data.ssh_private_key")).toBe(
      "data.ssh_private_key: must be a string (got number)",
    );
    expect(
      invalidMessage(
        "ssh_key",
        json({ ssh_private_key: keys.ecPkcs8, passphrase: MARKER }),
        "data.passphrase",
      ),
    ).toBe("data.passphrase: is not a field of ssh_key (expected ssh_private_key)");
    expect(invalidMessage("ssh_key", bytes(keys.ecPkcs8), "data")).toBe(
      "data: must be a JSON object (invalid JSON)",
    );
  });
});
