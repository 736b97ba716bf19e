import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  generateScalewayKey,
  generateToken,
  hashToken,
  isWellFormedToken,
} from "../../crypto/tokens.ts";
import { pgErrorCode } from "../../db/errors.ts";
import { auditEvents } from "../../db/schema.ts";
import { insertToken } from "../../db/tokens.ts";
import { backends } from "../../testing/backends.ts";
import {
  databasesFor,
  expectDomainError,
  expectInvalid,
  query,
} from "../../testing/domain-helpers.ts";
import { newCallAudit } from "../audit.ts";
import { Authenticator } from "../authenticate.ts";
import type { Caller, Grant, Role } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { listAuditEvents } from "./audit.ts";
import { createProject, listProjects } from "./projects.ts";
import { type CreateTokenInput, createToken, listTokens, revokeToken } from "./tokens.ts";

/**
 * The token the test callers call with: a real row (inserted in each
 * backend's beforeAll), since a token records the token that created it.
 */
let callerTokenId = randomUUID();

/** A caller as the call chain builds it: a principal with these grants and a fresh audit record. */
function callerWith(grants: Grant[], method = "coffer.admin.v1.AdminService/Test"): Caller {
  const tokenId = callerTokenId;
  const audit = newCallAudit(method, `req-${randomUUID()}`);
  audit.tokenId = tokenId;
  return { requestId: audit.requestId, principal: { tokenId, grants }, audit };
}

const grant = (projectId: string, role: Role, pathPrefix = "/"): Grant => ({
  projectId,
  role,
  pathPrefix,
});
const globalAdmin = () => callerWith([grant("", "admin")]);
const projectAdmin = (...projects: string[]) => callerWith(projects.map((p) => grant(p, "admin")));

interface TokenRowInDb {
  id: string;
  name: string;
  prefix: string;
  hash: Uint8Array;
  grants: unknown;
  revoked_at: Date | null;
}

describe.each(backends)("admin calls on $name", (backend) => {
  // Two regions: "home" (the default) holds projects, tokens and admin events.
  const dbs = databasesFor(backend, ["home", "away"]);
  let domain: DomainDeps;
  let p1: string;
  let p2: string;
  beforeAll(async () => {
    domain = await dbs.open();
    callerTokenId = randomUUID();
    const { prefix, hash } = generateToken();
    await insertToken(dbs.db("home"), {
      id: callerTokenId,
      name: "test caller",
      prefix,
      hash,
      grants: [{ projectId: "", role: "admin", pathPrefix: "/" }],
      expiresAt: null,
      createdBy: null,
    });
    p1 = (await createProject(domain, globalAdmin(), { name: "payments" })).id;
    p2 = (await createProject(domain, globalAdmin(), { name: "billing" })).id;
  });
  afterAll(() => dbs.close());

  const tokenInput = (
    grants: CreateTokenInput["grants"],
    overrides: Partial<CreateTokenInput> = {},
  ): CreateTokenInput => ({ name: "ci deploy", grants, ...overrides });

  const tokenCount = async (): Promise<number> =>
    (await query<{ n: number }>(dbs.db("home"), sql`select count(*)::int as n from tokens`))[0]
      ?.n ?? 0;

  describe("projects", () => {
    it("are created by a global admin in the home database, with their audit event", async () => {
      const caller = globalAdmin();
      const project = await createProject(domain, caller, { name: "Team Ünïcode ✓" });
      expect(project.name).toBe("Team Ünïcode ✓");
      expect(caller.audit?.region).toBe("home");
      const home = await query<{ id: string }>(
        dbs.db("home"),
        sql`select id from projects where id = ${project.id}`,
      );
      const away = await query<{ id: string }>(
        dbs.db("away"),
        sql`select id from projects where id = ${project.id}`,
      );
      expect(home).toHaveLength(1);
      expect(away).toHaveLength(0);
      const events = await query<{ method: string; outcome: string; token_id: string }>(
        dbs.db("home"),
        sql`select method, outcome, token_id from audit_events where project_id = ${project.id}`,
      );
      expect(events).toEqual([
        { method: caller.audit?.method, outcome: "OK", token_id: caller.principal?.tokenId },
      ]);
      expect(caller.audit?.written).toBe(true);
    });

    it("refuses a bad name, naming the field", async () => {
      await expectInvalid(createProject(domain, globalAdmin(), { name: "" }), "name", "required");
      await expectInvalid(createProject(domain, globalAdmin(), { name: "   " }), "name");
      await expectInvalid(
        createProject(domain, globalAdmin(), { name: "x".repeat(256) }),
        "name",
        "1-255",
      );
      await expectInvalid(createProject(domain, globalAdmin(), { name: "a\nb" }), "name");
      await createProject(domain, globalAdmin(), { name: "é".repeat(255) });
    });

    it("are created only by a global admin", async () => {
      await expectDomainError(
        createProject(domain, projectAdmin(p1), { name: "mine" }),
        "permission_denied",
        "global admin",
      );
      await expectDomainError(
        createProject(domain, { requestId: "t" }, { name: "mine" }),
        "unauthenticated",
      );
    });

    it("are listed whole to a global admin and only where administered to a project admin", async () => {
      const all = await listProjects(domain, globalAdmin(), { page: 0, pageSize: 0 });
      expect(all.projects.map((p) => p.id)).toEqual(expect.arrayContaining([p1, p2]));
      expect(all.totalCount).toBe(all.projects.length);

      const page = await listProjects(domain, globalAdmin(), { page: 2, pageSize: 1 });
      expect(page.projects).toHaveLength(1);
      expect(page.projects[0]?.id).toBe(all.projects[1]?.id);
      expect(page.totalCount).toBe(all.totalCount);

      // A grant on a project never created is not listed.
      const mine = await listProjects(
        domain,
        callerWith([grant(p1, "admin"), grant(p2, "read_only"), grant(randomUUID(), "admin")]),
        { page: 0, pageSize: 0 },
      );
      expect(mine.projects.map((p) => p.name)).toEqual(["payments"]);
      expect(mine.totalCount).toBe(1);
    });

    it("are not listed to a token that administers no whole project", async () => {
      for (const grants of [[grant(p1, "full_access")], [grant(p1, "admin", "/prod")]]) {
        await expectDomainError(
          listProjects(domain, callerWith(grants), { page: 0, pageSize: 0 }),
          "permission_denied",
        );
      }
    });
  });

  describe("tokens", () => {
    it("return their value once, at creation, and store only its hash", async () => {
      const caller = globalAdmin();
      const { token, value } = await createToken(
        domain,
        caller,
        tokenInput([grant(p1, "secret_access", "/prod/")]),
      );
      expect(isWellFormedToken(value)).toBe(true);
      expect(value.startsWith(token.prefix)).toBe(true);
      expect(token.grants).toEqual([{ projectId: p1, role: "secret_access", pathPrefix: "/prod" }]);
      expect(JSON.stringify(token)).not.toContain(value);
      expect(token).not.toHaveProperty("hash");

      const [row] = await query<TokenRowInDb>(
        dbs.db("home"),
        sql`select * from tokens where id = ${token.id}`,
      );
      expect(row).toBeDefined();
      expect(Buffer.from(row?.hash ?? []).equals(Buffer.from(hashToken(value)))).toBe(true);
      // No column holds the value, or any long piece of it.
      const stored = JSON.stringify(row, (_k, v) =>
        v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v,
      );
      expect(stored).not.toContain(value.slice(7, 30));

      // Listing and revoking show the token, never its value.
      const listed = await listTokens(domain, globalAdmin(), {
        projectId: p1,
        includeInactive: true,
        page: 0,
        pageSize: 0,
      });
      const again = listed.tokens.find((t) => t.id === token.id);
      expect(again?.prefix).toBe(token.prefix);
      expect(JSON.stringify(listed)).not.toContain(value.slice(7));
      const revoked = await revokeToken(domain, globalAdmin(), { tokenId: token.id });
      expect(JSON.stringify(revoked)).not.toContain(value.slice(7));

      // The audit event of the creation, in the same transaction, names the project.
      const events = await query<{ outcome: string; project_id: string }>(
        dbs.db("home"),
        sql`select outcome, project_id from ${auditEvents} where id = ${caller.audit?.id ?? ""}`,
      );
      expect(events).toEqual([{ outcome: "OK", project_id: p1 }]);
    });

    it("in the Scaleway form, store the access key id as prefix and only the secret key's hash", async () => {
      const { token, value, accessKey } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([grant(p1, "secret_access")], { format: "scaleway" }),
      );
      expect(accessKey).toMatch(/^SCW[A-Z0-9]{17}$/);
      expect(token).toMatchObject({ prefix: accessKey, accessKey });
      const [row] = await query<TokenRowInDb>(
        dbs.db("home"),
        sql`select * from tokens where id = ${token.id}`,
      );
      expect(row?.prefix).toBe(accessKey);
      expect(Buffer.from(row?.hash ?? []).equals(Buffer.from(hashToken(value)))).toBe(true);
      const stored = JSON.stringify(row, (_k, v) =>
        v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v,
      );
      // The secret key's long groups (the 4-digit ones could turn up in any hex by chance).
      for (const part of value.split("-").filter((p) => p.length >= 8)) {
        expect(stored).not.toContain(part);
      }
      const authenticator = new Authenticator(() => dbs.db("home"));
      expect((await authenticator.authenticate(`Bearer ${value}`)).tokenId).toBe(token.id);

      // A Coffer token has none.
      const plain = await createToken(domain, globalAdmin(), tokenInput([grant(p1, "read_only")]));
      expect(plain.accessKey).toBeUndefined();
      expect(plain.token.accessKey).toBeNull();
    });

    it("keep access key ids unique, while Coffer prefixes may repeat", async () => {
      const row = (prefix: string) => ({
        id: randomUUID(),
        name: "dup",
        prefix,
        hash: generateScalewayKey().hash,
        grants: [],
        expiresAt: null,
        createdBy: null,
      });
      const { accessKey } = generateScalewayKey();
      await insertToken(dbs.db("home"), row(accessKey));
      const dup = await insertToken(dbs.db("home"), row(accessKey)).catch((e: unknown) => e);
      expect(pgErrorCode(dup)).toBe("23505");
      await insertToken(dbs.db("home"), row("coffer_same"));
      await insertToken(dbs.db("home"), row("coffer_same"));
    });

    it("authenticate once created, and stop at once when revoked on this replica", async () => {
      const authenticator = new Authenticator(() => dbs.db("home"));
      const { token, value } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([grant(p1, "read_only", "/staging")]),
      );
      const principal = await authenticator.authenticate(`Bearer ${value}`);
      expect(principal).toEqual({
        tokenId: token.id,
        grants: [{ projectId: p1, role: "read_only", pathPrefix: "/staging" }],
      });
      await revokeToken(domain, globalAdmin(), { tokenId: token.id }, (ids) =>
        authenticator.forget(ids),
      );
      await expectDomainError(authenticator.authenticate(`Bearer ${value}`), "unauthenticated");
    });

    it("share one lookup between concurrent authentications of a token", async () => {
      // Long watch streams re-check their token together when the cache
      // expires: each burst must cost one query, not one per stream.
      let lookups = 0;
      const authenticator = new Authenticator(() => {
        lookups += 1;
        return dbs.db("home");
      });
      const { token, value } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([grant(p1, "read_only")]),
      );
      const principals = await Promise.all(
        Array.from({ length: 50 }, () => authenticator.authenticate(`Bearer ${value}`)),
      );
      expect(lookups).toBe(1);
      expect(new Set(principals.map((p) => p.tokenId))).toEqual(new Set([token.id]));
      // A revocation while a lookup is in flight: the answer is not cached.
      const inFlight = new Authenticator(() => dbs.db("home"));
      const first = inFlight.authenticate(`Bearer ${value}`);
      await revokeToken(domain, globalAdmin(), { tokenId: token.id }, (ids) =>
        inFlight.forget(ids),
      );
      await first.catch(() => undefined);
      await expectDomainError(inFlight.authenticate(`Bearer ${value}`), "unauthenticated");
    });

    it("normalise path prefixes and fold duplicate grants", async () => {
      const { token } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([
          grant(p1, "read_only", ""),
          grant(p1, "read_only", "/"),
          grant(p2.toUpperCase(), "secret_write", "/a/b/"),
          grant("", "admin", ""),
        ]),
      );
      expect(token.grants).toEqual([
        { projectId: p1, role: "read_only", pathPrefix: "/" },
        { projectId: p2, role: "secret_write", pathPrefix: "/a/b" },
        { projectId: "", role: "admin", pathPrefix: "/" },
      ]);
    });

    it("refuse bad names, grants and expiry, naming the field, and store nothing", async () => {
      const before = await tokenCount();
      const admin = globalAdmin();
      const ok = [grant(p1, "read_only")];
      await expectInvalid(createToken(domain, admin, tokenInput(ok, { name: "" })), "name");
      await expectInvalid(
        createToken(domain, admin, tokenInput(ok, { name: "n".repeat(256) })),
        "name",
      );
      await expectInvalid(createToken(domain, admin, tokenInput([])), "grants", "at least one");
      await expectInvalid(
        createToken(
          domain,
          admin,
          tokenInput(Array.from({ length: 101 }, () => grant(p1, "read_only"))),
        ),
        "grants",
        "at most 100",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput([{ projectId: p1, role: "", pathPrefix: "/" }])),
        "grants[0].role",
        "required",
      );
      await expectInvalid(
        createToken(
          domain,
          admin,
          tokenInput([grant(p1, "read_only"), { projectId: p1, role: "owner", pathPrefix: "/" }]),
        ),
        "grants[1].role",
        '"owner"',
        "secret_access",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput([grant("p1", "read_only")])),
        "grants[0].project_id",
        "UUID",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput([grant("", "full_access")])),
        "grants[0].project_id",
        "global admin",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput([grant("", "admin", "/prod")])),
        "grants[0].path_prefix",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput([grant(p1, "read_only", "prod")])),
        "grants[0].path_prefix",
        'start with "/"',
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput([grant(p1, "read_only", "/a//b")])),
        "grants[0].path_prefix",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput(ok, { expiresAt: new Date(Date.now() - 1000) })),
        "expires_at",
        "future",
      );
      await expectInvalid(
        createToken(domain, admin, tokenInput(ok, { expiresAt: new Date(Number.NaN) })),
        "expires_at",
      );
      expect(await tokenCount()).toBe(before);
    });

    it("are NOT_FOUND on a project that does not exist", async () => {
      const ghost = randomUUID();
      await expectDomainError(
        createToken(
          domain,
          globalAdmin(),
          tokenInput([grant(p1, "read_only"), grant(ghost, "read_only")]),
        ),
        "not_found",
        `project ${ghost} not found`,
      );
    });

    it("are granted by a project admin only on projects it administers", async () => {
      const before = await tokenCount();
      const admin = callerWith([grant(p1, "admin"), grant(p2, "read_only")]);
      const { token } = await createToken(
        domain,
        admin,
        tokenInput([grant(p1, "admin"), grant(p1, "full_access", "/prod")]),
      );
      expect(token.grants).toHaveLength(2);

      // A project it can see but not administer.
      await expectDomainError(
        createToken(domain, admin, tokenInput([grant(p1, "read_only"), grant(p2, "read_only")])),
        "permission_denied",
        `does not administer project ${p2}`,
      );
      // The global admin role.
      await expectDomainError(
        createToken(domain, admin, tokenInput([grant("", "admin")])),
        "permission_denied",
        "global admin",
      );
      // A project it cannot see: the same answer as a project that does not exist.
      const other = (await createProject(domain, globalAdmin(), { name: "hidden" })).id;
      const hidden = await expectDomainError(
        createToken(domain, admin, tokenInput([grant(other, "read_only")])),
        "not_found",
      );
      const ghost = randomUUID();
      const missing = await expectDomainError(
        createToken(domain, admin, tokenInput([grant(ghost, "read_only")])),
        "not_found",
      );
      expect(hidden.message.replace(other, "X")).toBe(missing.message.replace(ghost, "X"));
      // An admin grant narrowed to a folder administers nothing.
      await expectDomainError(
        createToken(
          domain,
          callerWith([grant(p1, "admin", "/prod")]),
          tokenInput([grant(p1, "read_only", "/prod")]),
        ),
        "permission_denied",
      );
      // A token without the admin role.
      await expectDomainError(
        createToken(
          domain,
          callerWith([grant(p1, "full_access")]),
          tokenInput([grant(p1, "read_only")]),
        ),
        "permission_denied",
      );
      expect(await tokenCount()).toBe(before + 1);
    });

    it("are listed newest first: all to a global admin, those wholly in its projects to a project admin", async () => {
      const only1 = (await createToken(domain, globalAdmin(), tokenInput([grant(p1, "read_only")])))
        .token;
      const both = (
        await createToken(
          domain,
          globalAdmin(),
          tokenInput([grant(p1, "read_only"), grant(p2, "read_only")]),
        )
      ).token;
      const only2 = (await createToken(domain, globalAdmin(), tokenInput([grant(p2, "read_only")])))
        .token;
      const global = (await createToken(domain, globalAdmin(), tokenInput([grant("", "admin")])))
        .token;
      const ids = (r: { tokens: { id: string }[] }) => r.tokens.map((t) => t.id);
      const list = (caller: Caller, projectId = "", page = 0, pageSize = 0) =>
        listTokens(domain, caller, { projectId, includeInactive: false, page, pageSize });

      const all = await list(globalAdmin());
      expect(ids(all).slice(0, 4)).toEqual([global.id, only2.id, both.id, only1.id]);
      expect(all.totalCount).toBe(all.tokens.length);
      const second = await list(globalAdmin(), "", 2, 1);
      expect(ids(second)).toEqual([only2.id]);
      expect(second.totalCount).toBe(all.totalCount);

      const onP1 = ids(await list(globalAdmin(), p1));
      expect(onP1).toEqual(expect.arrayContaining([only1.id, both.id]));
      expect(onP1).not.toContain(only2.id);
      expect(onP1).not.toContain(global.id);

      const byP1Admin = ids(await list(projectAdmin(p1)));
      expect(byP1Admin).toContain(only1.id);
      expect(byP1Admin).not.toContain(both.id);
      expect(byP1Admin).not.toContain(only2.id);
      expect(byP1Admin).not.toContain(global.id);
      const byBothAdmin = ids(await list(projectAdmin(p1, p2), p2));
      expect(byBothAdmin).toEqual(expect.arrayContaining([both.id, only2.id]));
      expect(byBothAdmin).not.toContain(only1.id);

      await expectDomainError(
        list(callerWith([grant(p1, "admin"), grant(p2, "read_only")]), p2),
        "permission_denied",
      );
      await expectDomainError(list(projectAdmin(p1), randomUUID()), "not_found", "not found");
      await expectDomainError(list(callerWith([grant(p1, "secret_write")])), "permission_denied");
      await expectInvalid(list(globalAdmin(), "nope"), "project_id");
      await expectInvalid(list(globalAdmin(), "", 0, 1001), "page_size");
    });

    it("that are revoked or expired are listed only when asked for", async () => {
      const project = (await createProject(domain, globalAdmin(), { name: "lifecycle" })).id;
      const make = async () =>
        (
          await createToken(
            domain,
            globalAdmin(),
            tokenInput([grant(project, "read_only")], { expiresAt: new Date(Date.now() + 60_000) }),
          )
        ).token;
      const active = await make();
      const revoked = await make();
      const expired = await make();
      await revokeToken(domain, globalAdmin(), { tokenId: revoked.id });
      await dbs
        .db("home")
        .execute(
          sql`update tokens set expires_at = now() - interval '1 second' where id = ${expired.id}`,
        );
      const list = async (includeInactive: boolean) =>
        (
          await listTokens(domain, globalAdmin(), {
            projectId: project,
            includeInactive,
            page: 0,
            pageSize: 0,
          })
        ).tokens.map((t) => t.id);
      expect(await list(false)).toEqual([active.id]);
      expect(await list(true)).toEqual([expired.id, revoked.id, active.id]);
    });

    it("are revoked once: a second revocation is FAILED_PRECONDITION and keeps the first time", async () => {
      const { token } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([grant(p1, "read_only")]),
      );
      const forgotten: string[] = [];
      const caller = projectAdmin(p1);
      const revoked = await revokeToken(domain, caller, { tokenId: token.id }, (ids) =>
        forgotten.push(...ids),
      );
      expect(revoked.revokedAt).toBeInstanceOf(Date);
      expect(forgotten).toEqual([token.id]);
      const events = await query<{ outcome: string; project_id: string }>(
        dbs.db("home"),
        sql`select outcome, project_id from audit_events where id = ${caller.audit?.id ?? ""}`,
      );
      expect(events).toEqual([{ outcome: "OK", project_id: p1 }]);

      const second = projectAdmin(p1);
      await expectDomainError(
        revokeToken(domain, second, { tokenId: token.id }, (ids) => forgotten.push(...ids)),
        "failed_precondition",
        "already revoked",
        revoked.revokedAt?.toISOString() ?? "?",
      );
      expect(forgotten).toEqual([token.id]);
      expect(second.audit?.written).toBe(false);
      const [row] = await query<TokenRowInDb>(
        dbs.db("home"),
        sql`select revoked_at from tokens where id = ${token.id}`,
      );
      expect(new Date(row?.revoked_at ?? 0).getTime()).toBe(revoked.revokedAt?.getTime());
    });

    it("are revoked by exactly one of several concurrent revocations", async () => {
      const { token } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([grant(p1, "read_only")]),
      );
      const forgotten: string[] = [];
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, () =>
          revokeToken(domain, globalAdmin(), { tokenId: token.id }, (ids) =>
            forgotten.push(...ids),
          ),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) {
        if (r.status === "rejected")
          expect(r.reason).toMatchObject({ kind: "failed_precondition" });
      }
      expect(forgotten).toEqual([token.id]);
    });

    it("are revoked by a project admin only when all their grants are on its projects", async () => {
      const { token } = await createToken(
        domain,
        globalAdmin(),
        tokenInput([grant(p1, "read_only"), grant(p2, "read_only")]),
      );
      const refused = await expectDomainError(
        revokeToken(domain, projectAdmin(p1), { tokenId: token.id }),
        "not_found",
      );
      const ghost = randomUUID();
      const missing = await expectDomainError(
        revokeToken(domain, projectAdmin(p1), { tokenId: ghost }),
        "not_found",
      );
      expect(refused.message.replace(token.id, "X")).toBe(missing.message.replace(ghost, "X"));
      await expectInvalid(revokeToken(domain, globalAdmin(), { tokenId: "" }), "token_id");
      await revokeToken(domain, projectAdmin(p1, p2), { tokenId: token.id });
    });
  });

  describe("audit events", () => {
    // Events seeded with explicit times, one minute apart, in the "away" region.
    const t0 = Date.parse("2030-01-01T00:00:00Z");
    const at = (minutes: number) => new Date(t0 + minutes * 60_000);
    const tokenA = randomUUID();
    const tokenB = randomUUID();
    const secretX = randomUUID();
    const ids: string[] = [];
    beforeAll(async () => {
      const rows = Array.from({ length: 12 }, (_, i) => ({
        id: randomUUID(),
        time: at(i),
        tokenId: i % 2 === 0 ? tokenA : tokenB,
        projectId: i < 8 ? p1 : p2,
        method:
          i % 3 === 0
            ? "coffer.secretmanager.v1.SecretService/AccessSecretVersion"
            : "coffer.secretmanager.v1.SecretService/GetSecret",
        secretId: i < 4 ? secretX : randomUUID(),
        outcome: i % 4 === 3 ? "PERMISSION_DENIED" : "OK",
        requestId: `seed-${i}`,
      }));
      ids.push(...rows.map((r) => r.id));
      await dbs.db("away").insert(auditEvents).values(rows);
    });

    const list = (caller: Caller, filter: Partial<Parameters<typeof listAuditEvents>[2]> = {}) =>
      listAuditEvents(domain, caller, {
        region: "away",
        projectId: "",
        secretId: "",
        tokenId: "",
        method: "",
        outcome: "",
        page: 0,
        pageSize: 0,
        ...filter,
      });
    const seq = (r: Awaited<ReturnType<typeof list>>) =>
      r.events.map((e) => Number(e.requestId.slice(5)));

    it("are listed newest first, with the region, paginated with the total", async () => {
      const all = await list(globalAdmin());
      expect(seq(all)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      expect(all.totalCount).toBe(12);
      expect(all.events.every((e) => e.region === "away")).toBe(true);
      const page2 = await list(globalAdmin(), { page: 2, pageSize: 5 });
      expect(seq(page2)).toEqual([6, 5, 4, 3, 2]);
      expect(page2.totalCount).toBe(12);
      const page3 = await list(globalAdmin(), { page: 3, pageSize: 5 });
      expect(seq(page3)).toEqual([1, 0]);
    });

    it("are filtered by project, secret, token, method, outcome and time range", async () => {
      const admin = globalAdmin();
      expect(seq(await list(admin, { projectId: p2 }))).toEqual([11, 10, 9, 8]);
      expect(seq(await list(admin, { secretId: secretX }))).toEqual([3, 2, 1, 0]);
      expect(seq(await list(admin, { tokenId: tokenB, projectId: p2 }))).toEqual([11, 9]);
      expect(
        seq(
          await list(admin, {
            method: "coffer.secretmanager.v1.SecretService/AccessSecretVersion",
          }),
        ),
      ).toEqual([9, 6, 3, 0]);
      const denied = await list(admin, { outcome: "PERMISSION_DENIED" });
      expect(seq(denied)).toEqual([11, 7, 3]);
      expect(denied.totalCount).toBe(3);
      // Start inclusive, end exclusive.
      expect(seq(await list(admin, { startTime: at(4), endTime: at(7) }))).toEqual([6, 5, 4]);
      expect(seq(await list(admin, { startTime: at(10) }))).toEqual([11, 10]);
      expect(seq(await list(admin, { endTime: at(2), outcome: "OK" }))).toEqual([1, 0]);
      expect((await list(admin, { tokenId: randomUUID() })).totalCount).toBe(0);
    });

    it("are listed to a project admin only for a project it administers", async () => {
      const mine = await list(projectAdmin(p1), { projectId: p1, pageSize: 3 });
      expect(seq(mine)).toEqual([7, 6, 5]);
      expect(mine.totalCount).toBe(8);
      await expectDomainError(list(projectAdmin(p1)), "permission_denied", "project_id");
      await expectDomainError(
        list(callerWith([grant(p1, "admin"), grant(p2, "full_access")]), { projectId: p2 }),
        "permission_denied",
      );
      await expectDomainError(list(projectAdmin(p1), { projectId: p2 }), "not_found", p2);
      await expectDomainError(
        list(callerWith([grant(p1, "full_access")]), { projectId: p1 }),
        "permission_denied",
      );
    });

    it("refuse bad filters, naming the field", async () => {
      const admin = globalAdmin();
      await expectInvalid(list(admin, { secretId: "x" }), "secret_id");
      await expectInvalid(list(admin, { tokenId: "x" }), "token_id");
      await expectInvalid(list(admin, { projectId: "x" }), "project_id");
      await expectInvalid(list(admin, { outcome: "DENIED" }), "outcome", "PERMISSION_DENIED");
      await expectInvalid(list(admin, { startTime: at(5), endTime: at(5) }), "end_time");
      await expectInvalid(list(admin, { region: "mars" }), "region", "home, away");
      await expectInvalid(list(admin, { page: -1 }), "page");
    });

    it("of the listing call itself go to the home region, filed under the project asked for", async () => {
      const caller = projectAdmin(p1);
      await list(caller, { projectId: p1 });
      expect(caller.audit?.region).toBe("home");
      expect(caller.audit?.facts.projectId).toBe(p1);
      // A read: the chain writes its event when the call ends, not the domain.
      expect(caller.audit?.written).toBe(false);
    });
  });
});
