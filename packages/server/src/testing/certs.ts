import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** A PEM file written by {@link createTestCertificates}, with its contents. */
export interface PemFile {
  file: string;
  pem: Buffer;
}

/** A certificate and its key. */
export interface TestIdentity {
  cert: PemFile;
  key: PemFile;
}

export interface TestCertificates {
  dir: string;
  /** The CA that signed `server` and `client`. */
  ca: TestIdentity;
  /** For 127.0.0.1 and localhost, signed by `ca`. */
  server: TestIdentity;
  /** A client certificate signed by `ca`. */
  client: TestIdentity;
  /** A CA unrelated to `ca`. */
  otherCa: TestIdentity;
  /** A client certificate signed by `otherCa`. */
  otherClient: TestIdentity;
  /** Removes the folder. */
  remove(): void;
}

/**
 * Generates, with the `openssl` command, a CA, a server certificate for
 * 127.0.0.1 and localhost and a client certificate signed by it, and a
 * second CA with a client certificate of its own, in a fresh temporary
 * folder. P-256 keys, valid for a day.
 */
export function createTestCertificates(): TestCertificates {
  const dir = mkdtempSync(path.join(tmpdir(), "coffer-tls-"));
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const pem = (name: string): PemFile => {
    const file = path.join(dir, name);
    return { file, pem: readFileSync(file) };
  };
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];
  const makeCa = (name: string, cn: string): TestIdentity => {
    openssl(
      "req",
      "-x509",
      ...newKey,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "1",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    return { cert: pem(`${name}.crt`), key: pem(`${name}.key`) };
  };
  const makeLeaf = (name: string, cn: string, ca: string, extensions: string): TestIdentity => {
    writeFileSync(path.join(dir, `${name}.ext`), extensions);
    openssl(
      "req",
      ...newKey,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-set_serial",
      `0x${randomBytes(8).toString("hex")}`,
      "-days",
      "1",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    );
    return { cert: pem(`${name}.crt`), key: pem(`${name}.key`) };
  };
  const clientExt = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
  const ca = makeCa("ca", "Coffer Test CA");
  const server = makeLeaf(
    "server",
    "localhost",
    "ca",
    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  const client = makeLeaf("client", "coffer-test-client", "ca", clientExt);
  const otherCa = makeCa("other-ca", "Unrelated CA");
  const otherClient = makeLeaf("other-client", "coffer-test-client", "other-ca", clientExt);
  return {
    dir,
    ca,
    server,
    client,
    otherCa,
    otherClient,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
