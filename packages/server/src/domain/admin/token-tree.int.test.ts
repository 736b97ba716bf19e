import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken } from "../../crypto/tokens.ts";
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
import type { Caller, Grant } from "../caller.ts";
import type { DomainDeps } from "../context.ts";
import { createProject } from "./projects.ts";
import { createToken, revokeToken, type TokenView } from "./tokens.ts";

const REVOKE = "coffer.admin.v1.AdminService/RevokeToken";
const HOUR = 3_600_000;

/** A call made with the token `tokenId` holding `grants`, as the call chain builds it. */
function callerAs(tokenId: string, grants: Grant[], method = "coffer.admin.v1.AdminService/X") {
  const audit = newCallAudit(method, `req-${randomUUID()}`);
  audit.tokenId = tokenId;
  return { requestId: audit.requestId, principal: { tokenId, grants }, audit } satisfies Caller;
}

const admin = (projectId: string): Grant => ({ projectId, role: "admin", pathPrefix: "/" });
const globalAdminGrant: Grant = { projectId: "", role: "admin", pathPrefix: "/" };

describe.each(backends)("tokens made by tokens on $name", (backend) => {
  const dbs = databasesFor(backend, ["home"]);
  let domain: DomainDeps;
  let project: string;
  /** The root token (as the bootstrap token is: no creator, no expiry). */
  let rootId: string;
  const root = (method?: string) => callerAs(rootId, [globalAdminGrant], method);

  beforeAll(async () => {
    domain = await dbs.open();
    rootId = randomUUID();
    const { prefix, hash } = generateToken();
    await insertToken(dbs.db(), {
      id: rootId,
      name: "root",
      prefix,
      hash,
      grants: [globalAdminGrant],
      expiresAt: null,
      createdBy: null,
    });
    project = (await createProject(domain, root(), { name: "tree" })).id;
  });
  afterAll(() => dbs.close());

  /** Makes a project admin token as `by`. */
  const mint = (by: Caller, expiresAt?: Date) =>
    createToken(domain, by, {
      name: "delegate",
      grants: [{ projectId: project, role: "admin", pathPrefix: "/" }],
      ...(expiresAt !== undefined && { expiresAt }),
    });
  const as = (t: TokenView) => callerAs(t.id, [admin(project)]);

  it("record their creator; a creator that never expires sets no limit", async () => {
    const { token } = await mint(root());
    expect(token.createdBy).toBe(rootId);
    expect(token.expiresAt).toBeNull();
    const [row] = await query<{ created_by: string | null }>(
      dbs.db(),
      sql`select created_by from tokens where id = ${rootId}`,
    );
    expect(row?.created_by).toBeNull();
  });

  it("never outlive their creator: a later or missing expiry is refused, naming the limit", async () => {
    const parentExpiry = new Date(Date.now() + HOUR);
    const { token: parent } = await mint(root(), parentExpiry);

    await expectInvalid(mint(as(parent)), "expires_at", parentExpiry.toISOString());
    await expectInvalid(
      mint(as(parent), new Date(parentExpiry.getTime() + 1000)),
      "expires_at",
      "cannot outlive",
    );
    const count = await query<{ n: number }>(
      dbs.db(),
      sql`select count(*)::int as n from tokens where created_by = ${parent.id}`,
    );
    expect(count[0]?.n).toBe(0);

    // Up to the creator's expiry, exactly, is allowed.
    const { token: child } = await mint(as(parent), parentExpiry);
    expect(child.expiresAt?.getTime()).toBe(parentExpiry.getTime());
    expect(child.createdBy).toBe(parent.id);
    const { token: grandchild } = await mint(as(child), new Date(Date.now() + HOUR / 2));
    expect(grandchild.createdBy).toBe(child.id);
  });

  it("are refused to a creator revoked since it authenticated", async () => {
    const { token: parent } = await mint(root());
    const caller = as(parent);
    await revokeToken(domain, root(REVOKE), { tokenId: parent.id });
    await expectDomainError(mint(caller), "unauthenticated", "revoked");
  });

  it("are revoked with their creator, transitively, each revocation audited", async () => {
    const { token: parent, value: parentValue } = await mint(root());
    const { token: child, value: childValue } = await mint(as(parent));
    const { token: grandchild, value: grandchildValue } = await mint(as(child));
    const { token: sibling, value: siblingValue } = await mint(root());

    const authenticator = new Authenticator(() => dbs.db());
    for (const v of [parentValue, childValue, grandchildValue, siblingValue]) {
      await authenticator.authenticate(`Bearer ${v}`); // now cached
    }

    const forgotten: string[] = [];
    const caller = root(REVOKE);
    // One call of the hook, with the whole subtree.
    let hooked = 0;
    const revoked = await revokeToken(domain, caller, { tokenId: parent.id }, (ids) => {
      hooked += 1;
      forgotten.push(...ids);
      authenticator.forget(ids);
    });
    expect(revoked.id).toBe(parent.id);
    expect(forgotten).toEqual([parent.id, child.id, grandchild.id]);
    expect(hooked).toBe(1);

    // At once on this replica, through the cache, for the whole subtree.
    for (const v of [parentValue, childValue, grandchildValue]) {
      await expectDomainError(authenticator.authenticate(`Bearer ${v}`), "unauthenticated");
    }
    expect((await authenticator.authenticate(`Bearer ${siblingValue}`)).tokenId).toBe(sibling.id);
    // And for a replica that asks the database.
    const other = new Authenticator(() => dbs.db());
    await expectDomainError(other.authenticate(`Bearer ${grandchildValue}`), "unauthenticated");

    const rows = await query<{ id: string; revoked: boolean }>(
      dbs.db(),
      sql`select id, revoked_at is not null as revoked from tokens
          where id in (${parent.id}, ${child.id}, ${grandchild.id}, ${sibling.id})`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.id, r.revoked]))).toEqual({
      [parent.id]: true,
      [child.id]: true,
      [grandchild.id]: true,
      [sibling.id]: false,
    });

    // One event per token revoked, under the call's request id, by the caller's token.
    const events = await query<{
      target_token_id: string;
      token_id: string;
      method: string;
      outcome: string;
      project_id: string;
    }>(
      dbs.db(),
      sql`select target_token_id, token_id, method, outcome, project_id from audit_events
          where request_id = ${caller.requestId} order by target_token_id`,
    );
    expect(events).toEqual(
      [parent.id, child.id, grandchild.id].sort().map((id) => ({
        target_token_id: id,
        token_id: rootId,
        method: REVOKE,
        outcome: "OK",
        project_id: project,
      })),
    );
    expect(events.length).toBe(3);

    // The named token's event is the call's own.
    const own = await query<{ target_token_id: string }>(
      dbs.db(),
      sql`select target_token_id from audit_events where id = ${caller.audit.id}`,
    );
    expect(own).toEqual([{ target_token_id: parent.id }]);
  });

  it("revoke the children of a child revoked before", async () => {
    const { token: parent } = await mint(root());
    const { token: child } = await mint(as(parent));
    const { token: grandchild } = await mint(as(child));
    // The child's own revocation takes the grandchild with it already...
    const forgotten: string[] = [];
    await revokeToken(domain, root(REVOKE), { tokenId: child.id }, (ids) => forgotten.push(...ids));
    expect(forgotten).toEqual([child.id, grandchild.id]);
    // ...and the parent's reports only what it revoked itself.
    forgotten.length = 0;
    await revokeToken(domain, root(REVOKE), { tokenId: parent.id }, (ids) =>
      forgotten.push(...ids),
    );
    expect(forgotten).toEqual([parent.id]);
  });

  it("leave no live descendant when creation races the revocation", async () => {
    const { token: parent } = await mint(root());
    const { token: child } = await mint(as(parent));
    const results = await Promise.allSettled([
      ...Array.from({ length: 8 }, () => mint(as(child))),
      revokeToken(domain, root(REVOKE), { tokenId: parent.id }),
      ...Array.from({ length: 8 }, () => mint(as(child))),
    ]);
    for (const r of results) {
      if (r.status === "rejected") expect(r.reason).toMatchObject({ kind: "unauthenticated" });
    }
    const live = await query<{ id: string }>(
      dbs.db(),
      sql`select id from tokens where created_by = ${child.id} and revoked_at is null`,
    );
    expect(live).toEqual([]);
  });
});
