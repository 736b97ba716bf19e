import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../crypto/tokens.ts";
import { insertToken } from "../../db/tokens.ts";
import { backends } from "../../testing/backends.ts";
import {
  databasesFor,
  expectDomainError,
  query,
  secretInput,
  utf8,
} from "../../testing/domain-helpers.ts";
import { newCallAudit } from "../audit.ts";
import type { Caller, Grant, Role } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { createSecret } from "../create-secret.ts";
import { deleteSecret } from "../delete-secret.ts";
import { listSecrets } from "../read-secrets.ts";
import { createProject, deleteProject, listProjects, updateProject } from "./projects.ts";
import { createToken } from "./tokens.ts";

/**
 * Issue 11, item 15: secrets only in projects that exist; projects renamed
 * and deleted (refused while any region holds one of their secrets, unless
 * forced by a global admin), with unique names.
 */

/**
 * The token the test callers call with: a real row (inserted in each
 * backend's beforeAll), since a token records the token that created it.
 */
let callerTokenId = randomUUID();

function callerWith(grants: Grant[], method = "coffer.admin.v1.AdminService/Test"): Caller {
  const tokenId = callerTokenId;
  const audit = newCallAudit(method, `req-${randomUUID()}`);
  audit.tokenId = tokenId;
  return { requestId: audit.requestId, principal: { tokenId, grants }, audit };
}
const grant = (projectId: string, role: Role): Grant => ({ projectId, role, pathPrefix: "/" });
const globalAdmin = () => callerWith([grant("", "admin")]);

describe.each(backends)("project lifecycle on $name", (backend) => {
  // Two regions, each its own database: projects live in "home" only.
  const dbs = databasesFor(backend, ["home", "away"]);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
    callerTokenId = randomUUID();
    const { prefix, hash } = generateToken();
    await insertToken(dbs.db("home"), {
      id: callerTokenId,
      name: "test caller",
      prefix,
      hash,
      grants: [grant("", "admin")],
      expiresAt: null,
      createdBy: null,
    });
  });
  afterAll(() => dbs.close());

  const newProject = async (name = `p-${randomUUID()}`) =>
    (await createProject(domain, globalAdmin(), { name })).id;
  const secretsIn = async (region: string, projectId: string) =>
    (
      await query<{ n: number }>(
        dbs.db(region),
        sql`select count(*)::int as n from secrets where project_id = ${projectId}`,
      )
    )[0]?.n ?? 0;

  describe("creating a secret", () => {
    it("in a project that does not exist is NOT_FOUND naming it, in every region, and stores nothing", async () => {
      const ghost = randomUUID();
      for (const region of ["home", "away"]) {
        await expectDomainError(
          createSecret(
            domain,
            globalAdmin(),
            secretInput({
              region,
              projectId: ghost,
              firstVersion: { data: utf8("x"), description: "" },
            }),
          ),
          "not_found",
          `project ${ghost} not found`,
        );
        expect(await secretsIn(region, ghost)).toBe(0);
      }
    });

    it("answers a caller with a grant on a project that does not exist the same NOT_FOUND", async () => {
      const ghost = randomUUID();
      const withGrant = callerWith([grant(ghost, "full_access")]);
      const without = callerWith([grant(randomUUID(), "full_access")]);
      const a = await expectDomainError(
        createSecret(domain, withGrant, secretInput({ projectId: ghost })),
        "not_found",
      );
      const b = await expectDomainError(
        createSecret(domain, without, secretInput({ projectId: ghost })),
        "not_found",
      );
      expect(a.message).toBe(b.message);
    });

    it("in a project that exists works in every region", async () => {
      const p = await newProject();
      for (const region of ["home", "away"]) {
        await createSecret(domain, globalAdmin(), secretInput({ region, projectId: p }));
        expect(await secretsIn(region, p)).toBe(1);
      }
    });
  });

  describe("names", () => {
    it("are unique: create and rename to a taken name are ALREADY_EXISTS", async () => {
      const name = `unique-${randomUUID()}`;
      const p = await newProject(name);
      await expectDomainError(
        createProject(domain, globalAdmin(), { name }),
        "already_exists",
        `a project named "${name}" already exists`,
      );
      const q = await newProject();
      await expectDomainError(
        updateProject(domain, globalAdmin(), { projectId: q, name }),
        "already_exists",
      );
      const renamed = await updateProject(domain, globalAdmin(), {
        projectId: p,
        name: `${name}-renamed`,
      });
      expect(renamed).toMatchObject({ id: p, name: `${name}-renamed` });
      // The old name is free again.
      await newProject(name);
    });

    it("rename: a project admin may, another project's admin gets NOT_FOUND, a bad name is INVALID_ARGUMENT", async () => {
      const p = await newProject();
      const caller = callerWith([grant(p, "admin")]);
      await updateProject(domain, caller, { projectId: p, name: `mine-${randomUUID()}` });
      expect(caller.audit?.written).toBe(true);
      await expectDomainError(
        updateProject(domain, callerWith([grant(randomUUID(), "admin")]), {
          projectId: p,
          name: "x",
        }),
        "not_found",
      );
      await expectDomainError(
        updateProject(domain, globalAdmin(), { projectId: p, name: "a\u0000b" }),
        "invalid_argument",
        "name: ",
      );
      await expectDomainError(
        updateProject(domain, globalAdmin(), { projectId: randomUUID(), name: "ghost" }),
        "not_found",
      );
    });

    it("migration 0007 renames existing duplicates so that the unique index can be built", async () => {
      const db = dbs.db("home");
      await db.execute(sql`drop index projects_name_key`);
      const dup = `dup-${randomUUID()}`;
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      for (const [i, id] of ids.entries()) {
        await db.execute(
          sql`insert into projects (id, name, created_at) values (${id}, ${dup}, now() + ${i} * interval '1 second')`,
        );
      }
      const fix = await readFile(
        new URL("../../db/migrations/0007_project_names_dedupe.sql", import.meta.url),
        "utf8",
      );
      await db.execute(sql.raw(fix));
      await db.execute(sql`create unique index projects_name_key on projects (name)`);
      const rows = await query<{ id: string; name: string }>(
        db,
        sql`select id, name from projects where name like ${`${dup}%`} order by created_at`,
      );
      expect(rows).toEqual([
        { id: ids[0], name: dup },
        { id: ids[1], name: `${dup} (${ids[1]})` },
        { id: ids[2], name: `${dup} (${ids[2]})` },
      ]);
    });
  });

  describe("delete", () => {
    it("needs a global admin; a project admin gets PERMISSION_DENIED", async () => {
      const p = await newProject();
      await expectDomainError(
        deleteProject(domain, callerWith([grant(p, "admin")]), { projectId: p, force: false }),
        "permission_denied",
      );
      await expectDomainError(
        deleteProject(domain, globalAdmin(), { projectId: randomUUID(), force: false }),
        "not_found",
      );
    });

    it("is refused while any region holds a secret, even one scheduled for deletion, and checks every region", async () => {
      const p = await newProject();
      const { secret } = await createSecret(
        domain,
        globalAdmin(),
        secretInput({ region: "away", projectId: p }),
      );
      const refused = await expectDomainError(
        deleteProject(domain, globalAdmin(), { projectId: p, force: false }),
        "failed_precondition",
        "away: 1 live, 0 scheduled for deletion",
      );
      expect(refused.message).toContain("--force");
      await deleteSecret(domain, globalAdmin(), { region: "away", secretId: secret.id, etag: "" });
      await expectDomainError(
        deleteProject(domain, globalAdmin(), { projectId: p, force: false }),
        "failed_precondition",
        "away: 0 live, 1 scheduled for deletion",
      );
      expect(await secretsIn("away", p)).toBe(1);
      const listed = await listProjects(domain, globalAdmin(), { page: 0, pageSize: 1000 });
      expect(listed.projects.map((r) => r.id)).toContain(p);
    });

    it("of an empty project removes it and every grant on it, revoking tokens left with none", async () => {
      const p = await newProject();
      const keep = await newProject();
      const only = await createToken(domain, globalAdmin(), {
        name: "only p",
        grants: [grant(p, "read_only")],
      });
      const both = await createToken(domain, globalAdmin(), {
        name: "p and keep",
        grants: [grant(p, "read_only"), grant(keep, "full_access")],
      });
      const caller = globalAdmin();
      const revoked: string[] = [];
      const changed: string[] = [];
      const r = await deleteProject(
        domain,
        caller,
        { projectId: p, force: false },
        { revoked: (ids) => revoked.push(...ids), changed: (ids) => changed.push(...ids) },
      );
      expect(r).toMatchObject({ destroyedSecrets: 0, updatedTokens: 2 });
      expect(revoked).toEqual([only.token.id]);
      expect(changed).toEqual([both.token.id]);
      const tokens = await query<{ id: string; grants: Grant[]; revoked_at: Date | null }>(
        dbs.db("home"),
        sql`select id, grants, revoked_at from tokens where id in (${only.token.id}, ${both.token.id})`,
      );
      const byId = new Map(tokens.map((t) => [t.id, t]));
      expect(byId.get(only.token.id)?.grants).toEqual([]);
      expect(byId.get(only.token.id)?.revoked_at).not.toBeNull();
      expect(byId.get(both.token.id)?.grants).toEqual([grant(keep, "full_access")]);
      expect(byId.get(both.token.id)?.revoked_at).toBeNull();
      const listed = await listProjects(domain, globalAdmin(), { page: 0, pageSize: 1000 });
      expect(listed.projects.map((row) => row.id)).not.toContain(p);
      // Audited in the home database, in the delete's transaction.
      expect(caller.audit?.written).toBe(true);
      const events = await query<{ project_id: string }>(
        dbs.db("home"),
        sql`select project_id from audit_events where request_id = ${caller.requestId}`,
      );
      expect(events).toEqual([{ project_id: p }]);
      await expectDomainError(
        createSecret(domain, globalAdmin(), secretInput({ projectId: p })),
        "not_found",
        `project ${p} not found`,
      );
    });

    it("forced, destroys the project's secrets in every region, scheduled ones included", async () => {
      const p = await newProject();
      const other = await newProject();
      for (const region of ["home", "away"]) {
        await createSecret(
          domain,
          globalAdmin(),
          secretInput({ region, projectId: p, firstVersion: { data: utf8("v"), description: "" } }),
        );
        const { secret } = await createSecret(
          domain,
          globalAdmin(),
          secretInput({ region, projectId: p }),
        );
        await deleteSecret(domain, globalAdmin(), { region, secretId: secret.id, etag: "" });
        await createSecret(domain, globalAdmin(), secretInput({ region, projectId: other }));
      }
      const r = await deleteProject(domain, globalAdmin(), { projectId: p, force: true });
      expect(r.destroyedSecrets).toBe(4);
      for (const region of ["home", "away"]) {
        expect(await secretsIn(region, p)).toBe(0);
        expect(await secretsIn(region, other)).toBe(1);
        const versions = await query<{ n: number }>(
          dbs.db(region),
          sql`select count(*)::int as n from secret_versions v where not exists (select 1 from secrets s where s.id = v.secret_id)`,
        );
        expect(versions[0]?.n).toBe(0);
      }
      const listed = await listSecrets(domain, globalAdmin(), {
        region: "",
        projectId: "",
        tags: [],
        orderBy: "name_asc",
        page: 0,
        pageSize: 1000,
      });
      expect(listed.secrets.some((s) => s.projectId === p)).toBe(false);
    });

    it("racing creations: either the delete is refused or no secret of the project survives it", async () => {
      for (let round = 0; round < 3; round++) {
        const p = await newProject();
        const creations = Array.from({ length: 12 }, (_, i) =>
          createSecret(
            domain,
            globalAdmin(),
            secretInput({ region: i % 2 === 0 ? "home" : "away", projectId: p }),
          ).then(
            () => "ok",
            (e: Error) => e.message,
          ),
        );
        const deletion = deleteProject(domain, globalAdmin(), { projectId: p, force: false }).then(
          () => "deleted",
          (e: Error) => e.message,
        );
        const [outcome, ...created] = await Promise.all([deletion, ...creations]);
        const remaining = (await secretsIn("home", p)) + (await secretsIn("away", p));
        if (outcome === "deleted") {
          expect(remaining).toBe(0);
          for (const c of created) expect(["ok", `project ${p} not found`]).toContain(c);
          expect(created.filter((c) => c === "ok")).toHaveLength(0);
        } else {
          expect(outcome).toContain("still holds secrets");
          expect(remaining).toBe(created.filter((c) => c === "ok").length);
        }
      }
    });
  });
});
