import { generateKeyPairSync } from "node:crypto";
import net from "node:net";
import { EphemeralAction, Role, SecretType } from "@coffer/api";
import { createTestCertificates, type TestServer } from "@coffer/server/testing";
import type { CofferProtocol } from "./index.ts";

/**
 * Support for the tests that run a real server: a project seeded with a
 * secret of every type, and a TCP proxy that can cut connections. Not part
 * of the package's API.
 */

const utf8 = (s: string) => new TextEncoder().encode(s);
const json = (v: unknown) => utf8(JSON.stringify(v));

/** The payload of /prod/db, a database_credentials secret. */
export const DB_CREDENTIALS = {
  engine: "postgres",
  username: "app",
  password: "pa55word",
  host: "db.internal",
  dbname: "shop",
  port: "5432",
} as const;

/** What {@link seed} created. */
export interface Seeded {
  projectId: string;
  /** A `secret_access` token on the project: what a service holds. */
  accessToken: string;
  /** Secret ids by location. */
  ids: Record<string, string>;
  certificatePem: string;
  sshKeyPem: string;
  /** The payload of /bin/blob. */
  binary: Uint8Array;
}

/** A project with one secret of each type (and two versions of /prod/kv), plus a sidecar token. */
export async function seed(server: TestServer, name = "client-tests"): Promise<Seeded> {
  const admin = server.adminClient("connect", server.adminToken);
  const rpc = server.client("connect", server.adminToken);
  const { project } = await admin.createProject({ name });
  const projectId = project?.id ?? "";
  const { value: accessToken } = await admin.createToken({
    name: "sidecar",
    grants: [{ projectId, role: Role.SECRET_ACCESS, pathPrefix: "/" }],
  });
  const certs = createTestCertificates();
  const certificatePem = certs.ca.cert.pem.toString("utf8");
  certs.remove();
  const sshKeyPem = generateKeyPairSync("ed25519")
    .privateKey.export({ type: "pkcs8", format: "pem" })
    .toString();
  const binary = new Uint8Array([0, 255, 1, 254, 0x80, 0x7f]);
  const ids: Record<string, string> = {};
  const create = async (
    location: string,
    type: SecretType,
    data: Uint8Array,
    extra: { ephemeralPolicy?: { expiresOnceAccessed: boolean; action: EphemeralAction } } = {},
  ) => {
    const slash = location.lastIndexOf("/");
    const { secret } = await rpc.createSecret({
      projectId,
      path: location.slice(0, slash) || "/",
      name: location.slice(slash + 1),
      type,
      firstVersion: { data },
      ...extra,
    });
    ids[location] = secret?.id ?? "";
  };
  await create("/prod/db", SecretType.DATABASE_CREDENTIALS, json(DB_CREDENTIALS));
  await create("/prod/kv", SecretType.KEY_VALUE, json({ mode: "v1" }));
  await rpc.createSecretVersion({
    secretId: ids["/prod/kv"],
    data: json({ mode: "v2", retries: 3, tls: true }),
  });
  await create("/prod/basic", SecretType.BASIC_CREDENTIALS, json({ username: "u", password: "p" }));
  await create("/prod/ssh", SecretType.SSH_KEY, json({ ssh_private_key: sshKeyPem }));
  await create("/certs/ca", SecretType.CERTIFICATE, utf8(certificatePem));
  await create("/bin/blob", SecretType.OPAQUE, binary);
  await create("/root-level", SecretType.OPAQUE, utf8("at the root"));
  return { projectId, accessToken, ids, certificatePem, sshKeyPem, binary };
}

/** Creates a single-access secret at `location` holding `text`; returns its id. */
export async function createSingleAccess(
  server: TestServer,
  projectId: string,
  location: string,
  text: string,
): Promise<string> {
  const slash = location.lastIndexOf("/");
  const { secret } = await server.client("connect", server.adminToken).createSecret({
    projectId,
    path: location.slice(0, slash) || "/",
    name: location.slice(slash + 1),
    ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
    firstVersion: { data: utf8(text) },
  });
  return secret?.id ?? "";
}

/** The URL of a server for a protocol. */
export function urlOf(server: TestServer, protocol: CofferProtocol): string {
  return `http://127.0.0.1:${protocol === "grpc" ? server.server.grpcPort : server.server.httpPort}`;
}

/**
 * A TCP proxy to a local port that can cut every connection through it and
 * refuse new ones for a while, as a network failure would.
 */
export class CuttableProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #refusing = false;

  private constructor(target: number) {
    this.#server = net.createServer((client) => {
      if (this.#refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => this.#sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
  }

  /** Listens on a free port of 127.0.0.1. */
  static async start(target: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(target);
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  /** The proxy's base URL. */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  /** Resets every connection, and refuses new ones until {@link up}. */
  down(): void {
    this.#refusing = true;
    for (const s of this.#sockets) s.resetAndDestroy();
    this.#sockets.clear();
  }

  /** Accepts connections again. */
  up(): void {
    this.#refusing = false;
  }

  /** Cuts everything and stops listening. */
  async close(): Promise<void> {
    this.down();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/** Waits until `predicate` holds, polling; fails with `describe()` after `timeoutMs`. */
export async function until(
  predicate: () => boolean,
  describe: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out; ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
