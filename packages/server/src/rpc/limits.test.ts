import { randomUUID } from "node:crypto";
import { SecretType } from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../db/raw-sql.ts";
import { createTestToken, ensureProjects } from "../testing/backends.ts";
import type { Protocol } from "../testing/clients.ts";
import { type InMemoryServer, startInMemoryServer } from "../testing/in-memory-server.ts";

const RPS = 5;
const BURST = 2 * RPS;

// In memory: the limits are the call chain's and the domain's, whatever the transport.
let running: InMemoryServer;
beforeAll(async () => {
  running = await startInMemoryServer({
    limits: { secretsPerProject: 2, versionsPerSecret: 2, requestsPerSecond: RPS },
  });
});
afterAll(() => running?.stop());

const adminToken = () =>
  createTestToken(running.server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }]);

const protocols: Protocol[] = ["connect", "grpc"];

describe.each(protocols)("limits over %s", (protocol) => {
  const clientFor = (token: string) => running.client(protocol, token);

  const auditOutcomes = async (tokenId: string) => {
    const rows = rowsOf<{ outcome: string; n: number }>(
      await running.server.domain.regions
        .resolve("")
        .db.execute(
          sql`select outcome, sum(count)::int as n from audit_events where token_id = ${tokenId} group by outcome`,
        ),
    );
    return Object.fromEntries(rows.map((r) => [r.outcome, r.n]));
  };

  it("refuses a token past its burst with RESOURCE_EXHAUSTED, audits each refusal, and recovers", async () => {
    const token = await adminToken();
    const other = await adminToken();
    const coffer = clientFor(token.value);
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: 3 * BURST }, () => coffer.listSecrets({ projectId: randomUUID() })),
    );
    const elapsedMs = performance.now() - started;
    const allowed = results.filter((r) => r.status === "fulfilled").length;
    const refused = results.flatMap((r) =>
      r.status === "rejected" ? [ConnectError.from(r.reason)] : [],
    );
    // The burst, plus whatever refilled while the calls were in flight.
    expect(allowed).toBeGreaterThanOrEqual(BURST);
    expect(allowed).toBeLessThanOrEqual(BURST + Math.ceil((elapsedMs / 1000) * RPS));
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) {
      expect({ code: e.code, message: e.rawMessage }).toEqual({
        code: Code.ResourceExhausted,
        message: `token ${token.id} exceeded its rate limit of ${RPS} requests per second (COFFER_RATE_LIMIT_RPS); retry after a short wait`,
      });
    }
    // Another token has its own bucket.
    await clientFor(other.value).listSecrets({ projectId: randomUUID() });
    // Every call is audited, the refused ones with their token and code,
    // counted in aggregated events (written within the flush interval, 5 s).
    await expect
      .poll(() => auditOutcomes(token.id), { timeout: 15_000, interval: 500 })
      .toEqual({ OK: allowed, RESOURCE_EXHAUSTED: refused.length });
    // One token refills every 1/RPS seconds.
    await new Promise((r) => setTimeout(r, 2_000 / RPS));
    await coffer.listSecrets({ projectId: randomUUID() });
  });

  it("refuses a secret past COFFER_MAX_SECRETS_PER_PROJECT and a version past COFFER_MAX_VERSIONS_PER_SECRET", async () => {
    const coffer = clientFor((await adminToken()).value);
    const projectId = randomUUID();
    await ensureProjects(running.server.domain, projectId);
    const data = new TextEncoder().encode("payload");
    const create = (name: string) =>
      coffer.createSecret({
        projectId,
        name,
        type: SecretType.OPAQUE,
        firstVersion: { data },
      });
    const { secret } = await create("a");
    await create("b");
    await expect(create("c")).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: `project ${projectId} has reached its limit of 2 secrets in region local (COFFER_MAX_SECRETS_PER_PROJECT); delete secrets or raise the limit`,
    });
    const secretId = secret?.id ?? "";
    await coffer.createSecretVersion({ secretId, data });
    await expect(coffer.createSecretVersion({ secretId, data })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: expect.stringContaining(
        `secret ${secretId} has reached its limit of 2 versions (COFFER_MAX_VERSIONS_PER_SECRET)`,
      ),
    });
  });
});
