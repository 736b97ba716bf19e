import { crc32 } from "node:zlib";
import { SecretService, SecretType } from "@coffer/api";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyRingHolder } from "../crypto/key-ring-holder.ts";
import { auditEvents } from "../db/schema.ts";
import { Authenticator } from "../domain/authenticate.ts";
import type { DomainDeps } from "../domain/context.ts";
import { HealthStatus } from "../ops/health.ts";
import {
  backends,
  createTestToken,
  PROJECT,
  silentLogger,
  testKeyRing,
} from "../testing/backends.ts";
import { databasesFor } from "../testing/domain-helpers.ts";
import { WatchFeeds } from "../watch/feed.ts";
import { TokenStreams } from "../watch/token-streams.ts";
import { buildServices, chainedServices, routes } from "./services.ts";

// The services module is the door for a transport: the same `routes` that
// connect-node serves runs here in memory, through the real call chain and
// domain on a real database, with no port.
describe.each(backends)("the services over createRouterTransport ($name)", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  let feeds: WatchFeeds;
  let token: string;
  beforeAll(async () => {
    const keys = { holder: new KeyRingHolder(testKeyRing()) };
    domain = { ...(await dbs.open()), keyRing: keys.holder.get };
    const authenticator = new Authenticator(() => domain.regions.resolve("").db);
    const tokens = await TokenStreams.start(dbs.database(), {
      maxPerToken: 10,
      cache: authenticator,
      logger: silentLogger,
    });
    feeds = await WatchFeeds.start(domain.regions.all(), silentLogger, tokens);
    const services = buildServices({
      logger: silentLogger,
      domain,
      feeds,
      authenticator,
      keys,
      health: new HealthStatus(
        domain.regions.all().map((r) => r.name),
        chainedServices.map((s) => s.typeName),
      ),
    });
    transport = createRouterTransport(routes(services));
    token = (await createTestToken(domain, [{ projectId: "", role: "admin", pathPrefix: "/" }]))
      .value;
  });
  afterAll(async () => {
    await feeds?.close();
    await dbs.close();
  });
  let transport: ReturnType<typeof createRouterTransport>;
  const client = () => createClient(SecretService, transport);
  const auth = () => ({ headers: { authorization: `Bearer ${token}` } });

  it("creates and reads a secret through the call chain, audited under the caller's request id", async () => {
    const data = new TextEncoder().encode("pw-1");
    const { secret } = await client().createSecret(
      {
        projectId: PROJECT,
        name: "in-memory",
        type: SecretType.OPAQUE,
        firstVersion: { data, dataCrc32: crc32(data) },
      },
      auth(),
    );
    const got = await client().accessSecretVersion(
      { secretId: secret?.id ?? "", revision: "latest" },
      { headers: { ...auth().headers, "x-request-id": "router-transport-1" } },
    );
    expect(Buffer.from(got.data).toString()).toBe("pw-1");
    const events = await dbs
      .db()
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.requestId, "router-transport-1"));
    expect(events.map((e) => [e.method, e.outcome])).toEqual([
      ["coffer.secretmanager.v1.SecretService/AccessSecretVersion", "OK"],
    ]);
  });

  it("refuses a call without a token before any handler runs", async () => {
    const err = await client()
      .listSecrets({ projectId: PROJECT })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.Unauthenticated);
  });
});
