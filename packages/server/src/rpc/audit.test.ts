import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { crc32 } from "node:zlib";
import { SecretType } from "@coffer/api";
import type { CallOptions } from "@connectrpc/connect";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuditRow, auditEvents, tokens } from "../db/schema.ts";
import type { Grant } from "../domain/caller.ts";
import { createTestToken, ensureProjects } from "../testing/backends.ts";
import type { Protocol, SecretClient } from "../testing/clients.ts";
import {
  bytesIn,
  mapLimit,
  type Outcome,
  outcomeOf,
  serverBackends,
  type TestServer,
} from "../testing/rpc-servers.ts";

/**
 * Audit completeness (issue 3, items 5 and 8): every call through a real
 * client, allowed or denied, leaves exactly one event with the right facts;
 * a mutation's event lives and dies with its transaction; and the JSON-lines
 * copy (COFFER_AUDIT_LOG) mirrors the database.
 */

const SERVICE = "coffer.secretmanager.v1.SecretService";
const P = randomUUID();
const Q = randomUUID();
const PROTOCOLS: Protocol[] = ["grpc", "connect", "grpc-web"];
const utf8 = (s: string) => new TextEncoder().encode(s);

/** The event a call must leave; null where the event must hold nothing. */
interface Expected {
  method: string;
  outcome: string;
  tokenId: string | null;
  projectId: string | null;
  secretId: string | null;
  revision: number | null;
}

type Who =
  | "admin"
  | "full"
  | "writer"
  | "reader"
  | "accessor"
  | "anonymous"
  | "revoked"
  | "expired";

/** The callers of a scenario, each over every protocol. */
interface Cast {
  client(who: Who, i: number): SecretClient;
  tokenId(who: Who): string | null;
}

async function castOf(running: TestServer): Promise<Cast> {
  const { domain } = running.server;
  const grant = (role: Grant["role"], pathPrefix = "/prod"): Grant[] => [
    { projectId: P, role, pathPrefix },
  ];
  const ids = {} as Record<Who, string | null>;
  const values = {} as Record<Who, string | undefined>;
  const make = async (who: Who, grants: Grant[], options = {}) => {
    const t = await createTestToken(domain, grants, options);
    ids[who] = t.id;
    values[who] = t.value;
    return t;
  };
  await make("admin", [{ projectId: "", role: "admin", pathPrefix: "/" }]);
  await make("full", grant("full_access", "/"));
  await make("writer", grant("secret_write"));
  await make("reader", grant("read_only"));
  await make("accessor", grant("secret_access"));
  const revoked = await make("revoked", grant("full_access", "/"));
  await domain.regions
    .resolve("")
    .db.update(tokens)
    .set({ revokedAt: new Date() })
    .where(eq(tokens.id, revoked.id));
  await make("expired", grant("full_access", "/"), { expiresAt: new Date(Date.now() - 1000) });
  // A refused token never names its holder in the trail.
  ids.anonymous = null;
  ids.revoked = null;
  ids.expired = null;
  const clients = new Map<string, SecretClient>();
  return {
    client: (who, i) => {
      const protocol = PROTOCOLS[i % PROTOCOLS.length] as Protocol;
      const key = `${who}/${protocol}`;
      let c = clients.get(key);
      if (c === undefined) {
        c = running.client(protocol, values[who]);
        clients.set(key, c);
      }
      return c;
    },
    tokenId: (who) => ids[who],
  };
}

/** One scripted call: who makes it, what it must answer, and the event it must leave. */
interface Step {
  requestId: string;
  method: string;
  who: Who;
  want: string;
  run(c: SecretClient, options: CallOptions): Promise<unknown>;
  /** The event's facts, from what the call answered. */
  facts(response: unknown): Partial<Pick<Expected, "projectId" | "secretId" | "revision">>;
}

interface Secret {
  id: string;
  name: string;
  path: string;
}

type Facts = ReturnType<Step["facts"]>;
const none = (): Facts => ({});
const inP = (): Facts => ({ projectId: P });
const on = (s: Secret, revision?: number): Facts => ({
  projectId: P,
  secretId: s.id,
  ...(revision !== undefined && { revision }),
});
const revisionOf = (r: unknown): number => {
  const x = r as { revision?: number; version?: { revision: number } };
  const revision = x.revision ?? x.version?.revision;
  if (revision === undefined) throw new Error("no revision in the response");
  return revision;
};

const CREATORS: Who[] = ["admin", "full", "writer"];

/**
 * The scenario's first part: creating secrets (some refused). Returns the
 * steps and, once run, the secrets they made.
 */
function creations(prefix: string, count: number) {
  const prod: Secret[] = [];
  const staging: Secret[] = [];
  const steps: Step[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${i}`;
    const step = (
      who: Who,
      want: string,
      secretPath: string,
      first: boolean,
      into?: Secret[],
    ): Step => ({
      requestId: `${prefix}-${i}`,
      method: "CreateSecret",
      who,
      want,
      run: (c, o) =>
        c.createSecret(
          {
            projectId: P,
            path: secretPath,
            name,
            type: SecretType.OPAQUE,
            ...(first && { firstVersion: { data: utf8(`payload ${i}`) } }),
          },
          o,
        ),
      facts: (r) => {
        if (want !== "OK") return inP();
        const secret = (r as { secret: Secret }).secret;
        into?.push({ id: secret.id, name, path: secretPath });
        return on(secret, first ? 1 : undefined);
      },
    });
    if (i % 10 === 9) steps.push(step("reader", "PERMISSION_DENIED", "/prod", true));
    else if (i % 10 === 8) steps.push(step("admin", "OK", "/staging", true, staging));
    else if (i % 10 === 7) steps.push(step("full", "OK", "/prod", false));
    else steps.push(step(CREATORS[i % CREATORS.length] as Who, "OK", "/prod", true, prod));
  }
  return { steps, prod, staging };
}

/** The scenario's second part: every kind of call on what the first part made. */
function mixedCalls(prefix: string, count: number, prod: Secret[], staging: Secret[]): Step[] {
  const steps: Step[] = [];
  for (let i = 0; i < count; i++) {
    const s = prod[i % prod.length] as Secret;
    const st = staging[i % staging.length] as Secret;
    const kinds: Omit<Step, "requestId">[] = [
      {
        method: "CreateSecretVersion",
        who: "writer",
        want: "OK",
        run: (c, o) => c.createSecretVersion({ secretId: s.id, data: utf8(`v ${i}`) }, o),
        facts: (r) => on(s, revisionOf(r)),
      },
      {
        method: "AccessSecretVersion",
        who: "accessor",
        want: "OK",
        run: (c, o) => c.accessSecretVersion({ secretId: s.id, revision: "latest_enabled" }, o),
        facts: (r) => on(s, revisionOf(r)),
      },
      {
        method: "AccessSecretVersionByPath",
        who: "full",
        want: "OK",
        run: (c, o) =>
          c.accessSecretVersionByPath(
            { projectId: P, path: s.path, name: s.name, revision: "latest_enabled" },
            o,
          ),
        facts: (r) => on(s, revisionOf(r)),
      },
      {
        method: "ListSecrets",
        who: "reader",
        want: "OK",
        run: (c, o) => c.listSecrets({ projectId: P }, o),
        facts: inP,
      },
      {
        method: "GetSecret",
        who: "reader",
        want: "OK",
        run: (c, o) => c.getSecret({ secretId: s.id }, o),
        facts: () => on(s),
      },
      {
        method: "CreateSecretVersion",
        who: "reader",
        want: "PERMISSION_DENIED",
        run: (c, o) => c.createSecretVersion({ secretId: s.id, data: utf8("no") }, o),
        facts: () => on(s),
      },
      {
        // Hidden from the caller, but its project's admins see the attempt.
        method: "AccessSecretVersion",
        who: "accessor",
        want: "NOT_FOUND",
        run: (c, o) => c.accessSecretVersion({ secretId: st.id, revision: "1" }, o),
        facts: () => ({ projectId: P, secretId: st.id }),
      },
      {
        method: "GetSecret",
        who: "anonymous",
        want: "UNAUTHENTICATED",
        run: (c, o) => c.getSecret({ secretId: s.id }, o),
        facts: none,
      },
      {
        method: "GetSecret",
        who: "reader",
        want: "INVALID_ARGUMENT",
        run: (c, o) => c.getSecret({ secretId: "not-a-uuid" }, o),
        facts: none,
      },
      {
        method: "GetSecret",
        who: "full",
        want: "NOT_FOUND",
        run: (c, o) => c.getSecret({ secretId: randomUUID() }, o),
        facts: none,
      },
      {
        method: "AccessSecretVersion",
        who: "accessor",
        want: "NOT_FOUND",
        run: (c, o) => c.accessSecretVersion({ secretId: s.id, revision: "9999" }, o),
        facts: () => on(s, 9999),
      },
      {
        method: "ListSecrets",
        who: "accessor",
        want: "OK",
        run: (c, o) => c.listSecrets({}, o),
        facts: none,
      },
      {
        method: "ListTags",
        who: "revoked",
        want: "UNAUTHENTICATED",
        run: (c, o) => c.listTags({ projectId: P }, o),
        facts: none,
      },
      {
        method: "UpdateSecret",
        who: "full",
        want: "ABORTED",
        run: (c, o) => c.updateSecret({ secretId: s.id, description: "x", etag: '"0"' }, o),
        facts: () => on(s),
      },
      {
        method: "BrowseSecrets",
        who: "admin",
        want: "OK",
        run: (c, o) => c.browseSecrets({ projectId: P, prefix: "/" }, o),
        facts: inP,
      },
      {
        method: "ListSecretVersions",
        who: "reader",
        want: "OK",
        run: (c, o) => c.listSecretVersions({ secretId: s.id }, o),
        facts: () => on(s),
      },
      {
        method: "AccessSecretVersion",
        who: "expired",
        want: "UNAUTHENTICATED",
        run: (c, o) => c.accessSecretVersion({ secretId: s.id, revision: "1" }, o),
        facts: none,
      },
      {
        method: "ListSecretTypes",
        who: "reader",
        want: "NOT_FOUND",
        run: (c, o) => c.listSecretTypes({ projectId: Q }, o),
        facts: () => ({ projectId: Q }),
      },
      {
        method: "AccessSecretVersion",
        who: "reader",
        want: "PERMISSION_DENIED",
        run: (c, o) => c.accessSecretVersion({ secretId: s.id, revision: "1" }, o),
        facts: () => on(s),
      },
      {
        method: "GetSecretVersion",
        who: "writer",
        want: "OK",
        run: (c, o) => c.getSecretVersion({ secretId: s.id, revision: "latest" }, o),
        facts: (r) => on(s, revisionOf(r)),
      },
      {
        // Refused before any secret is looked at.
        method: "CreateSecretVersion",
        who: "full",
        want: "INVALID_ARGUMENT",
        run: (c, o) =>
          c.createSecretVersion(
            { secretId: s.id, data: utf8("v"), dataCrc32: (crc32(utf8("v")) + 1) >>> 0 },
            o,
          ),
        facts: none,
      },
    ];
    const kind = kinds[i % kinds.length] as Omit<Step, "requestId">;
    steps.push({ ...kind, requestId: `${prefix}-${i}` });
  }
  return steps;
}

/** Runs steps with modest concurrency; checks each answer and returns each expected event. */
async function play(cast: Cast, steps: Step[], offset = 0): Promise<Map<string, Expected>> {
  const expected = new Map<string, Expected>();
  const outcomes = await mapLimit(steps, 16, async (step, i) => {
    const c = cast.client(step.who, offset + i);
    const got: Outcome<unknown> = await outcomeOf(
      step.run(c, { headers: { "x-request-id": step.requestId } }),
    );
    const facts = got.code === "OK" || step.want !== "OK" ? step.facts(got.response) : {};
    expected.set(step.requestId, {
      method: `${SERVICE}/${step.method}`,
      outcome: step.want,
      tokenId: cast.tokenId(step.who),
      projectId: facts.projectId ?? null,
      secretId: facts.secretId ?? null,
      revision: facts.revision ?? null,
    });
    return { requestId: step.requestId, method: step.method, code: got.code, message: got.message };
  });
  // Every call answered as scripted (so the events below are checked against the truth).
  expect(outcomes.filter((o, i) => o.code !== steps[i]?.want)).toEqual([]);
  return expected;
}

const eventOf = (row: AuditRow): Expected => ({
  method: row.method,
  outcome: row.outcome,
  tokenId: row.tokenId,
  projectId: row.projectId,
  secretId: row.secretId,
  revision: row.revision,
});

async function eventsFor(running: TestServer, requestId: string): Promise<AuditRow[]> {
  return running.server.domain.regions
    .resolve("")
    .db.select()
    .from(auditEvents)
    .where(eq(auditEvents.requestId, requestId));
}

describe.each(serverBackends)("audit trail on $name", (backend) => {
  let running: TestServer;
  let cast: Cast;
  beforeAll(async () => {
    running = await backend.start();
    await ensureProjects(running.server.domain, P, Q);
    cast = await castOf(running);
  }, 180_000);
  afterAll(() => running?.stop());

  it("holds exactly one event per call of a 1,000-call scenario, with its facts", {
    timeout: 300_000,
  }, async () => {
    const started = Date.now();
    const db = running.server.domain.regions.resolve("").db;
    const [{ before } = { before: -1 }] = await db
      .select({ before: sql<number>`count(*)`.mapWith(Number) })
      .from(auditEvents);
    const made = creations("scenario-create", 100);
    const expected = await play(cast, made.steps);
    expect(made.prod.length).toBeGreaterThan(50);
    const mixed = mixedCalls("scenario-call", 900, made.prod, made.staging);
    for (const [k, v] of await play(cast, mixed, 100)) expected.set(k, v);
    expect(expected.size).toBe(1000);

    // Calls refused before any handler ran (no valid token) are counted in
    // aggregated events (one per peer address, token prefix, method, outcome
    // and minute); every other call has an event of its own.
    const refused = new Set(
      [...expected].filter(([, e]) => e.outcome === "UNAUTHENTICATED").map(([id]) => id),
    );
    expect(refused.size).toBeGreaterThan(50);
    const own = new Map([...expected].filter(([id]) => !refused.has(id)));
    const aggregated = async () =>
      (await db.select().from(auditEvents)).filter(
        (r) => r.outcome === "UNAUTHENTICATED" && r.method.startsWith(SERVICE),
      );
    // Counts reach the database within the aggregator's flush interval (5 s).
    await expect
      .poll(async () => (await aggregated()).reduce((n, r) => n + r.count, 0), {
        timeout: 15_000,
        interval: 500,
      })
      .toBe(refused.size);
    const windows = await aggregated();
    // Three kinds of refused caller (no token, a revoked one, an expired
    // one), each with one method, per minute the scenario spanned.
    const minutes = Math.floor(Date.now() / 60_000) - Math.floor(started / 60_000) + 1;
    expect(windows.length).toBeLessThanOrEqual(3 * minutes);
    for (const w of windows) {
      expect(w.tokenId).toBeNull();
      expect(w.peer).toBe("127.0.0.1");
    }

    const rows = await db.select().from(auditEvents);
    const ours = rows.filter((r) => own.has(r.requestId));
    // Nothing else was called meanwhile: the scenario's events are all the new ones.
    expect(rows.length - before).toBe(own.size + windows.length);
    expect(ours).toHaveLength(own.size);
    expect(new Set(ours.map((r) => r.requestId)).size).toBe(own.size);
    expect(new Set(ours.map((r) => r.id)).size).toBe(own.size);
    const wrong = ours
      .map((row) => ({
        requestId: row.requestId,
        got: eventOf(row),
        want: own.get(row.requestId),
      }))
      .filter((e) => JSON.stringify(e.got) !== JSON.stringify(e.want));
    expect(wrong).toEqual([]);
    expect(ours.every((r) => r.count === 1)).toBe(true);
    // Every outcome of the script shows up, denied ones included.
    expect(new Set([...ours, ...windows].map((r) => r.outcome))).toEqual(
      new Set([
        "OK",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "UNAUTHENTICATED",
        "INVALID_ARGUMENT",
        "ABORTED",
      ]),
    );
    for (const row of ours) {
      expect(row.time.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
      expect(row.peer ?? "").toMatch(/127\.0\.0\.1/);
    }

    // And the admin API's audit list shows the same: one event per handled
    // call, and the refused ones counted.
    const admin = running.adminClient("connect", running.adminToken);
    const listed = new Map<string, { requestId: string; outcome: string; count: number }>();
    for (let page = 1; ; page++) {
      const { events } = await admin.listAuditEvents({ page, pageSize: 1000 });
      // Keyed by event id: each list call's own event shifts later pages by one.
      for (const e of events) listed.set(e.id, e);
      if (events.length < 1000) break;
    }
    const listedOurs = [...listed.values()].filter((e) => own.has(e.requestId));
    expect(listedOurs).toHaveLength(own.size);
    expect(new Set(listedOurs.map((e) => e.requestId)).size).toBe(own.size);
    expect(listedOurs.filter((e) => e.outcome !== own.get(e.requestId)?.outcome)).toEqual([]);
    const listedWindows = [...listed.values()].filter((e) =>
      windows.some((w) => w.id === (e as { id?: string }).id),
    );
    expect(listedWindows.reduce((n, e) => n + e.count, 0)).toBe(refused.size);
  });

  describe("a mutation's event is part of its transaction", () => {
    let secret: Secret;
    beforeAll(async () => {
      const { secret: s } = await cast.client("admin", 1).createSecret({
        projectId: P,
        path: "/prod",
        name: "tx",
        firstVersion: { data: utf8("v1") },
      });
      if (s === undefined) throw new Error("no secret");
      secret = { id: s.id, name: s.name, path: s.path };
      // Fails the commit of any transaction whose call has written its OK
      // event, for the request ids below: the failure comes after the event
      // insert, as late as a failure can come.
      const db = running.server.domain.regions.resolve("").db;
      await db.execute(
        sql.raw(`
        create function test_fail_commit() returns trigger language plpgsql as $$
        begin
          if new.request_id like 'fail-commit-retryable-%' then
            raise exception 'injected' using errcode = 'serialization_failure';
          end if;
          raise exception 'injected';
        end $$`),
      );
      await db.execute(
        sql.raw(`
        create constraint trigger test_fail_commit after insert on audit_events
        deferrable initially deferred for each row
        when (new.request_id like 'fail-commit-%' and new.outcome = 'OK')
        execute function test_fail_commit()`),
      );
    });

    const versionsOf = async () =>
      (await cast.client("admin", 0).getSecret({ secretId: secret.id })).secret?.versionCount;

    it("a stale etag: one ABORTED event, and no version", async () => {
      const got = await outcomeOf(
        cast
          .client("full", 0)
          .createSecretVersion(
            { secretId: secret.id, data: utf8("v"), etag: '"0"' },
            { headers: { "x-request-id": "stale-etag-1" } },
          ),
      );
      expect(got.code).toBe("ABORTED");
      expect((await eventsFor(running, "stale-etag-1")).map(eventOf)).toEqual([
        {
          method: `${SERVICE}/CreateSecretVersion`,
          outcome: "ABORTED",
          tokenId: cast.tokenId("full"),
          projectId: P,
          secretId: secret.id,
          revision: null,
        },
      ]);
      expect(await versionsOf()).toBe(1);
    });

    it("a commit that fails after the OK event was inserted: one ABORTED event, no version, no revision used", async () => {
      const count = await versionsOf();
      const got = await outcomeOf(
        cast
          .client("full", 1)
          .createSecretVersion(
            { secretId: secret.id, data: utf8("v") },
            { headers: { "x-request-id": "fail-commit-retryable-1" } },
          ),
      );
      // Retried (a serialization failure), then given up as ABORTED.
      expect(got.code, got.message).toBe("ABORTED");
      const events = await eventsFor(running, "fail-commit-retryable-1");
      expect(events.map((e) => e.outcome)).toEqual(["ABORTED"]);
      expect(events[0]?.secretId).toBe(secret.id);
      expect(await versionsOf()).toBe(count);
      const next = await cast
        .client("full", 2)
        .createSecretVersion({ secretId: secret.id, data: utf8("v") });
      expect(next.version?.revision).toBe(2);
    });

    it("an access whose transaction fails after its event: no payload, one failure event", async () => {
      const got = await outcomeOf(
        cast
          .client("accessor", 2)
          .accessSecretVersion(
            { secretId: secret.id, revision: "1" },
            { headers: { "x-request-id": "fail-commit-access-1" } },
          ),
      );
      expect(got.code).toBe("INTERNAL");
      expect(bytesIn(got.response)).toEqual([]);
      const events = await eventsFor(running, "fail-commit-access-1");
      expect(events.map((e) => [e.outcome, e.secretId, e.revision])).toEqual([
        ["INTERNAL", secret.id, 1],
      ]);
    });
  });

  it("copies every event to COFFER_AUDIT_LOG as one JSON line mirroring the database", {
    timeout: 180_000,
  }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "coffer-audit-log-"));
    const file = path.join(dir, "audit.jsonl");
    const logged = await backend.start({ auditLog: file });
    await ensureProjects(logged.server.domain, P, Q);
    try {
      const logCast = await castOf(logged);
      const made = creations("log-create", 30);
      const expected = await play(logCast, made.steps);
      const mixed = mixedCalls("log-call", 63, made.prod, made.staging);
      for (const [k, v] of await play(logCast, mixed)) expected.set(k, v);
      const db = logged.server.domain.regions.resolve("").db;
      // Every call is counted once: in its own event, or in an aggregated
      // refusal's count (written within the aggregator's flush interval).
      await expect
        .poll(async () => (await db.select().from(auditEvents)).reduce((n, r) => n + r.count, 0), {
          timeout: 15_000,
          interval: 500,
        })
        .toBe(expected.size);
      const rows = await db.select().from(auditEvents);
      expect(rows.filter((r) => r.count > 1).length).toBeGreaterThan(0);
      await logged.stop();
      const lines = (await readFile(file, "utf8")).split("\n").filter((l) => l !== "");
      const linesById = new Map<string, Record<string, unknown>[]>();
      for (const text of lines) {
        const line = JSON.parse(text) as Record<string, unknown>;
        linesById.set(String(line.id), [...(linesById.get(String(line.id)) ?? []), line]);
      }
      expect(new Set(linesById.keys())).toEqual(new Set(rows.map((r) => r.id)));
      for (const row of rows) {
        const copies = linesById.get(row.id) ?? [];
        const aggregated = row.outcome === "UNAUTHENTICATED";
        // An aggregated event: its first call's line, and a last one with the final count.
        expect(copies).toHaveLength(aggregated && row.count > 1 ? 2 : 1);
        const line = copies.at(-1);
        expect(line).toEqual({
          audit: true,
          time: expect.any(String),
          id: row.id,
          region: "local",
          method: row.method,
          outcome: row.outcome,
          request_id: row.requestId,
          ...(row.tokenId !== null && { token_id: row.tokenId }),
          ...(row.projectId !== null && { project_id: row.projectId }),
          ...(row.secretId !== null && { secret_id: row.secretId }),
          ...(row.secretPath !== null && { secret_path: row.secretPath }),
          ...(row.secretName !== null && { secret_name: row.secretName }),
          ...(row.revision !== null && { revision: row.revision }),
          ...(row.peer !== null && { peer: row.peer }),
          ...(row.tokenPrefix !== null && { token_prefix: row.tokenPrefix }),
          ...(aggregated && { count: row.count }),
        });
        expect(Math.abs(Date.parse(String(line?.time)) - row.time.getTime())).toBeLessThan(5_000);
        expect(eventOf(row)).toEqual(expected.get(row.requestId));
      }
    } finally {
      await logged.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
