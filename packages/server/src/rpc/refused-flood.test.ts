import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { Writable } from "node:stream";
import { SecretService } from "@coffer/api";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { and, inArray, like } from "drizzle-orm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../crypto/tokens.ts";
import { auditEvents } from "../db/schema.ts";
import { MAX_WINDOWS_PER_ADDRESS, VARIOUS } from "../domain/denied-calls.ts";
import { createTestToken } from "../testing/backends.ts";
import { mapLimit, serverBackends, type TestServer } from "../testing/rpc-servers.ts";

/**
 * Issue 11 item 6: callers without a valid token cost a bounded amount:
 * the per-address limit refuses them (RESOURCE_EXHAUSTED) before their
 * token is looked up, their audit events are aggregated per minute, and
 * their log lines too; valid callers are served throughout.
 */

const RPS = 5;
const BURST = 2 * RPS;
const N = 150;
const SERVICE = "coffer.secretmanager.v1.SecretService";

/**
 * A SecretService client whose connections leave from `localAddress` (any
 * 127/8 address is this host), over HTTP/1.1, or over one HTTP/2 connection.
 */
function clientFrom(
  server: TestServer,
  localAddress: string,
  token?: string,
  httpVersion: "1.1" | "2" = "1.1",
) {
  const baseUrl = `http://127.0.0.1:${server.server.httpPort}`;
  const auth = token !== undefined && {
    interceptors: [
      ((next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      }) satisfies Interceptor,
    ],
  };
  return createClient(
    SecretService,
    httpVersion === "2"
      ? createConnectTransport({
          baseUrl,
          httpVersion,
          nodeOptions: {
            createConnection: () =>
              connect({ host: "127.0.0.1", port: server.server.httpPort, localAddress }),
          },
          ...auth,
        })
      : createConnectTransport({ baseUrl, httpVersion, nodeOptions: { localAddress }, ...auth }),
  );
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (e: unknown) => ConnectError.from(e),
  );

describe.each(serverBackends)("a flood of refused calls on $name", (backend) => {
  let running: TestServer;
  const logLines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split("\n")) if (l !== "") logLines.push(JSON.parse(l));
        done();
      },
    });
    running = await backend.start({ peerRateLimitRps: RPS }, pino({ level: "info" }, sink));
  }, 120_000);
  afterAll(() => running?.stop());

  it("serves a client's first calls with a new token, made at once, past the address's burst: they join one lookup", async () => {
    const { domain, authenticator } = running.server;
    const token = await createTestToken(domain, [
      { projectId: "", role: "admin", pathPrefix: "/" },
    ]);
    // One HTTP/2 connection: the calls arrive together, while the first is looked up.
    const client = clientFrom(running, "127.0.0.3", token.value, "2");
    const lookupsBefore = authenticator.lookups;
    const results = await Promise.all(
      Array.from({ length: 4 * BURST }, () =>
        codeOf(client.listSecrets({ projectId: randomUUID() })),
      ),
    );
    expect(results.filter((r) => r !== "OK")).toEqual([]);
    expect(authenticator.lookups - lookupsBefore).toBe(1);
  });

  it("is refused before token lookups past the per-address limit, audited and logged in aggregate, while valid callers are served", {
    timeout: 120_000,
  }, async () => {
    const { domain, authenticator } = running.server;
    const valid = await createTestToken(domain, [
      { projectId: "", role: "admin", pathPrefix: "/" },
    ]);
    const fresh = await createTestToken(domain, [
      { projectId: "", role: "admin", pathPrefix: "/" },
    ]);
    const validFromA = clientFrom(running, "127.0.0.1", valid.value);
    // Verified a moment ago on this replica: served even once A's bucket is empty.
    await validFromA.listSecrets({ projectId: randomUUID() });

    const lookupsBefore = authenticator.lookups;
    const started = performance.now();
    let duringA: unknown;
    let duringB: unknown;
    // Each call from 127.0.0.1 presents a new well-formed random token.
    const results = await mapLimit(
      Array.from({ length: N }, (_, i) => i),
      8,
      async (i) => {
        if (i === N / 2) {
          [duringA, duringB] = await Promise.all([
            codeOf(validFromA.listSecrets({ projectId: randomUUID() })),
            // Another address, with a token this replica has never seen.
            codeOf(
              clientFrom(running, "127.0.0.2", fresh.value).listSecrets({
                projectId: randomUUID(),
              }),
            ),
          ]);
        }
        return codeOf(
          clientFrom(running, "127.0.0.1", generateToken().value).getSecret({
            secretId: randomUUID(),
          }),
        );
      },
    );
    const elapsedS = (performance.now() - started) / 1000;
    const lookups = authenticator.lookups - lookupsBefore;

    expect(duringA).toBe("OK");
    expect(duringB).toBe("OK");
    const refused = results.filter((r): r is ConnectError => r instanceof ConnectError);
    expect(refused).toHaveLength(N);
    const exhausted = refused.filter((e) => e.code === Code.ResourceExhausted);
    const unauthenticated = refused.filter((e) => e.code === Code.Unauthenticated);
    expect(exhausted.length + unauthenticated.length).toBe(N);
    // Only the burst, and what refilled meanwhile, reached the token lookup.
    const admitted = BURST + Math.ceil(elapsedS * RPS) + 1;
    expect(unauthenticated.length).toBeLessThanOrEqual(admitted);
    expect(exhausted.length).toBeGreaterThanOrEqual(N - admitted);
    expect(exhausted[0]?.rawMessage).toContain("COFFER_PEER_RATE_LIMIT_RPS");
    // The fresh token from B and nothing else beyond the admitted ones.
    expect(lookups).toBeLessThanOrEqual(admitted + 1);

    // Every refused call is counted, in a bounded number of events.
    const db = domain.regions.resolve("").db;
    const ours = () =>
      db
        .select()
        .from(auditEvents)
        .where(
          and(
            inArray(auditEvents.outcome, ["UNAUTHENTICATED", "RESOURCE_EXHAUSTED"]),
            like(auditEvents.peer, "127.0.0.1%"),
          ),
        );
    await expect
      .poll(async () => (await ours()).reduce((n, r) => n + r.count, 0), {
        timeout: 20_000,
        interval: 500,
      })
      .toBe(N);
    const rows = await ours();
    // Per address and minute: MAX_WINDOWS_PER_ADDRESS, then one overflow window per outcome.
    expect(rows.length).toBeLessThanOrEqual(2 * (MAX_WINDOWS_PER_ADDRESS + 2));
    for (const r of rows) {
      expect(r.peer).toBe("127.0.0.1");
      expect(r.tokenId).toBeNull();
      expect(r.tokenPrefix ?? "").toMatch(/^(coffer_[0-9A-Za-z]{4}|\*)$/);
      expect([`${SERVICE}/GetSecret`, VARIOUS]).toContain(r.method);
    }
    expect(rows.some((r) => r.method === VARIOUS && r.count > 1)).toBe(true);

    // Logged alike: the first call of each window, then one summary per window.
    const callLines = logLines.filter(
      (l) => l.msg === "call" && String(l.peer).startsWith("127.0.0.1:") && l.code !== "OK",
    );
    expect(callLines.length).toBe(rows.length);
    expect(callLines.every((l) => l.aggregated === true)).toBe(true);
    expect(JSON.stringify(logLines)).not.toMatch(/coffer_[0-9A-Za-z]{20,}/);

    // Admins see the counts.
    const admin = running.adminClient("connect", running.adminToken);
    const { events } = await admin.listAuditEvents({ pageSize: 1000 });
    const listed = events.filter((e) => rows.some((r) => r.id === e.id));
    expect(listed.reduce((n, e) => n + e.count, 0)).toBe(N);

    // Once the cached answer has lapsed, a token this replica verified before
    // is still served from an exhausted address (one lookup, not charged).
    await new Promise((r) => setTimeout(r, 2_100));
    const drained = await mapLimit(Array.from({ length: 4 * BURST }), 8, () =>
      codeOf(
        clientFrom(running, "127.0.0.1", generateToken().value).listTags({
          projectId: randomUUID(),
        }),
      ),
    );
    // The address's bucket refills while these run, so how many get in
    // depends on the machine's speed; that the address is limited does not.
    expect(
      drained.filter((c) => typeof c !== "string" && c.code === Code.ResourceExhausted).length,
    ).toBeGreaterThan(0);
    expect(await codeOf(validFromA.listSecrets({ projectId: randomUUID() }))).toBe("OK");
  });
});
