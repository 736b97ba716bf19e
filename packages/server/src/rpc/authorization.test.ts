import { randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  Role as AdminRole,
  type BrowseSecretsResponse,
  type ListSecretsResponse,
  SecretType,
} from "@coffer/api";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projects, tokens } from "../db/schema.ts";
import type { Grant, Role } from "../domain/caller.ts";
import {
  createAt,
  exchangedMatrixTokens,
  expected,
  GRANTED,
  isUnder,
  LIST_TAG,
  LISTED_TYPE,
  matrixTokens,
  P,
  PAYLOAD,
  PERMISSIONS,
  PLACES,
  PRINCIPALS,
  type PrincipalKind,
  Q,
  ROLES,
  RPCS,
  SCOPES,
  type Scope,
  seedMatrix,
  shape,
  TAG,
  type Target,
  TOKEN_CASES,
  type TokenCase,
  type Want,
} from "../testing/authorization-matrix.ts";
import { createTestToken } from "../testing/backends.ts";
import type { Protocol, SecretClient } from "../testing/clients.ts";
import { type InMemoryServer, inMemoryBackends } from "../testing/in-memory-server.ts";
import { startOidcIssuer, type TestOidcIssuer } from "../testing/oidc-issuer.ts";
import { bytesIn, outcomeOf } from "../testing/rpc-servers.ts";

/**
 * The authorization matrix (issue 3, item 8; its cases are
 * testing/authorization-matrix.ts): every SecretService RPC, called
 * through a real client (in memory: the rule does not depend on the
 * transport) by a token of every role granted on project P
 * narrowed to /prod, on a secret in each place relative to that grant, and
 * by callers without a valid token. Each case asserts the exact code, that a
 * hidden secret's NOT_FOUND reads exactly like a missing one's, that a
 * refused change changed nothing, and that roles without `access` never see
 * a payload.
 */

/** Each role's client speaks another protocol: authorization must not depend on it. */
const PROTOCOL: Record<Role | "admin-setup", Protocol> = {
  "admin-setup": "connect",
  admin: "grpc",
  full_access: "connect",
  secret_write: "grpc-web",
  read_only: "grpc",
  secret_access: "connect",
};

/** An exchanged token's client speaks yet another protocol than its static twin's. */
const EXCHANGED_PROTOCOL: Record<Role, Protocol> = {
  admin: "connect",
  full_access: "grpc-web",
  secret_write: "grpc",
  read_only: "connect",
  secret_access: "grpc",
};

/**
 * Every non-zero `dataCrc32` in a response, by path. The checksum of a short
 * payload reveals it, so it travels only with the payload (issue 11 item 3).
 */
function checksumsIn(value: unknown, path = "response"): string[] {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === "dataCrc32" && typeof v === "number" && v !== 0
      ? [`${path}.${k}`]
      : checksumsIn(v, `${path}.${k}`),
  );
}

// What the allowed list-like calls must show, per scope.

async function checkListSecrets(c: SecretClient, role: Role, scope: Scope | "all projects") {
  const everyInScope = (r: ListSecretsResponse) => {
    for (const s of r.secrets) {
      expect({ project: s.projectId, underGrant: isUnder(s.path, GRANTED) }).toEqual({
        project: P,
        underGrant: true,
      });
    }
  };
  const listed = (r: ListSecretsResponse) => r.secrets.map((s) => `${s.path}:${s.name}`).sort();
  switch (scope) {
    case "in scope":
    case "all projects": {
      const projectId = scope === "in scope" ? P : "";
      const tagged = await c.listSecrets({ projectId, tags: [LIST_TAG] });
      // Without `read` (secret_access), listing every project shows nothing.
      const want = PERMISSIONS[role].includes("read") ? ["/prod/app:listed", "/prod:listed"] : [];
      expect(listed(tagged)).toEqual(want);
      expect(tagged.totalCount).toBe(BigInt(want.length));
      const all = await c.listSecrets({ projectId, pageSize: 1000 });
      everyInScope(all);
      if (want.length > 0) expect(all.secrets.map((s) => s.id)).toContain(fixture("in scope").id);
      return;
    }
    case "out of project":
      throw new Error("no allowed answer out of project");
    default: {
      const { path } = PLACES[scope];
      for (const req of [
        { projectId: P, pathPrefix: path, pageSize: 1000 },
        { projectId: P, path, pageSize: 1000 },
        { projectId: P, tags: [TAG[scope]] },
        { projectId: P, path: "/" },
      ]) {
        const r = await c.listSecrets(req);
        expect(listed(r)).toEqual([]);
        expect(r.totalCount).toBe(0n);
      }
    }
  }
}

async function checkBrowse(c: SecretClient, _role: Role, scope: Scope | "all projects") {
  const items = (r: BrowseSecretsResponse) => r.items.map((i) => `${i.kind.case}:${i.fullPath}`);
  if (scope === "in scope") {
    // The root shows the granted folder and nothing else: not /staging,
    // /prodigal, nor the secret at the root.
    const root = await c.browseSecrets({ projectId: P, prefix: "/" });
    expect(items(root)).toEqual(["folder:/prod"]);
    expect(root.totalCount).toBe(1n);
    const prod = await c.browseSecrets({ projectId: P, prefix: "/prod", pageSize: 1000 });
    expect(items(prod)).toEqual(
      expect.arrayContaining(["folder:/prod/app", "secret:/prod/db", "secret:/prod/listed"]),
    );
    return;
  }
  if (scope === "out of project" || scope === "all projects") {
    throw new Error(`no allowed browse ${scope}`);
  }
  const r = await c.browseSecrets({ projectId: P, prefix: PLACES[scope].path });
  expect(items(r)).toEqual([]);
  expect(r.totalCount).toBe(0n);
}

/** Checks an allowed answer of a project-wide read for a scope: what it shows and what it must hide. */
type Check = (c: SecretClient, role: Role, scope: Scope | "all projects") => Promise<void>;

const CHECKS: Record<string, Check> = {
  ListSecrets: checkListSecrets,
  BrowseSecrets: checkBrowse,
  ListTags: async (c, _role, scope) => {
    const { tags, totalCount } = await c.listTags({ projectId: P, pageSize: 1000 });
    // Only the secrets under /prod carry tags a /prod token may see.
    expect([...tags].sort()).toEqual([LIST_TAG, TAG["in scope"]].sort());
    expect(totalCount).toBe(2n);
    if (scope !== "in scope" && scope !== "all projects") expect(tags).not.toContain(TAG[scope]);
  },
  ListSecretTypes: async (c, _role, scope) => {
    const { types } = await c.listSecretTypes({ projectId: P });
    expect([...types].sort()).toEqual([SecretType.OPAQUE, SecretType.KEY_VALUE].sort());
    if (scope !== "in scope" && scope !== "all projects") {
      expect(types).not.toContain(LISTED_TYPE[scope]);
    }
  },
};

// Fixtures and clients, per backend (set in beforeAll).

let fixtures: Record<Scope, Target>;
const fixture = (scope: Scope) => fixtures[scope];

describe.each(inMemoryBackends)("authorization matrix on $name", (backend) => {
  let running: InMemoryServer;
  let admin: SecretClient;
  const clients = {} as Record<Role, SecretClient>;
  /** The same grants, on tokens from AuthService.ExchangeToken. */
  const exchanged = {} as Record<Role, SecretClient>;
  const clientOf = (role: Role, principal: PrincipalKind) =>
    principal === "static token" ? clients[role] : exchanged[role];
  let issuer: TestOidcIssuer;
  /** Callers without a valid token, each with the client it calls through. */
  const unauthenticated = {} as Record<TokenCase, SecretClient>;
  /** What a caller without a token is told. */
  let refusal: string;
  /** A secret only the token cases aim at: nothing may change it. */
  let tokenTarget: Target;
  let n = 0;
  const unique = (prefix: string) => `${prefix}-${++n}`;

  const etagOf = async (t: Target) => (await admin.getSecret({ secretId: t.id })).secret?.etag;

  beforeAll(async () => {
    running = await backend.start();
    const tokens = await matrixTokens(running.server.domain);
    admin = running.client(PROTOCOL["admin-setup"], tokens.admin);
    for (const role of ROLES) clients[role] = running.client(PROTOCOL[role], tokens.roles[role]);
    issuer = await startOidcIssuer();
    const exchangedTokens = await exchangedMatrixTokens(
      running.adminClient("connect", tokens.admin),
      running.authClient("grpc"),
      issuer,
    );
    for (const role of ROLES) {
      exchanged[role] = running.client(EXCHANGED_PROTOCOL[role], exchangedTokens[role]);
    }
    const { invalid } = tokens;
    Object.assign(unauthenticated, {
      "no token": running.client("grpc-web", invalid["no token"]),
      "malformed token": running.client("grpc", invalid["malformed token"]),
      "unknown token": running.client("connect", invalid["unknown token"]),
      "revoked token": running.client("grpc", invalid["revoked token"]),
      "expired token": running.client("grpc-web", invalid["expired token"]),
    } satisfies Record<TokenCase, SecretClient>);
    const anonymous = await outcomeOf(running.client("connect").getSecret({ secretId: P }));
    expect(anonymous.code).toBe("UNAUTHENTICATED");
    expect(anonymous.message).toContain("authorization: Bearer");
    refusal = anonymous.message;
    ({ fixtures, tokenTarget } = await seedMatrix(admin));
  }, 180_000);
  afterAll(async () => {
    await running?.stop();
    await issuer?.close();
  });

  it("refuses a token at once when the admin API revokes it, even right after a call", async () => {
    const adminApi = running.adminClient("connect", running.adminToken);
    const { token, value } = await adminApi.createToken({
      name: "short-lived",
      grants: [{ projectId: P, role: AdminRole.FULL_ACCESS, pathPrefix: GRANTED }],
    });
    const holder = running.client("grpc", value);
    const secretId = fixture("in scope").id;
    expect((await outcomeOf(holder.getSecret({ secretId }))).code).toBe("OK");
    await adminApi.revokeToken({ tokenId: token?.id ?? "" });
    const got = await outcomeOf(holder.getSecret({ secretId }));
    expect(got.code).toBe("UNAUTHENTICATED");
    expect(got.message).toBe(refusal);
  });

  it("gives no checksum to a read_only token from any metadata RPC; access still carries it", async () => {
    const reader = clients.read_only;
    const accessor = clients.full_access;
    const writer = clients.secret_write;
    const pin = new TextEncoder().encode("482913");
    const created = await writer.createSecret({
      projectId: P,
      path: GRANTED,
      name: unique("pin"),
      firstVersion: { data: pin },
    });
    const secretId = created.secret?.id ?? "";
    const responses: [string, unknown][] = [["CreateSecret", created]];
    const ref = { secretId, revision: "1" };
    responses.push(
      ["CreateSecretVersion", await writer.createSecretVersion({ secretId, data: pin })],
      ["UpdateSecretVersion", await writer.updateSecretVersion({ ...ref, description: "d" })],
      ["DisableSecretVersion", await writer.disableSecretVersion(ref)],
      ["EnableSecretVersion", await writer.enableSecretVersion(ref)],
    );
    for (const revision of ["1", "2", "latest", "latest_enabled"]) {
      responses.push([
        `GetSecretVersion ${revision}`,
        await reader.getSecretVersion({ secretId, revision }),
      ]);
    }
    responses.push(["ListSecretVersions", await reader.listSecretVersions({ secretId })]);
    for (const [name, response] of responses) {
      expect(checksumsIn(response), name).toEqual([]);
    }
    const listed = await reader.listSecretVersions({ secretId });
    expect(listed.versions.map((v) => v.dataCrc32)).toEqual([0, 0]);
    const accessed = await accessor.accessSecretVersion(ref);
    expect(accessed.dataCrc32).toBe(crc32(pin));
  });

  /**
   * Moving a secret must not launder a narrow access grant (issue 11 item 5):
   * no sequence of calls, by one token or several, lets a token read a
   * payload it could not read where the payload is stored.
   */
  describe("moving a secret", () => {
    const M = randomUUID();
    const who = {} as Record<
      "writer" | "writerAndDrop" | "dropReader" | "vaultOwner" | "globalAdmin",
      SecretClient
    >;
    const secretOf = async (id: string) => (await admin.getSecret({ secretId: id })).secret;

    beforeAll(async () => {
      const { domain } = running.server;
      const home = domain.regions.resolve("").db;
      await home.insert(projects).values({ id: M, name: "matrix-moves" });
      const token = async (grants: Grant[], options: { expiresAt?: Date } = {}) =>
        (await createTestToken(domain, grants, options)).value;
      const g = (role: Role, pathPrefix: string): Grant => ({ projectId: M, role, pathPrefix });
      Object.assign(who, {
        // secret_write everywhere, no payload anywhere.
        writer: running.client("grpc", await token([g("secret_write", "/")])),
        // The token: secret_write on / and secret_access on /drop.
        writerAndDrop: running.client(
          "connect",
          await token([g("secret_write", "/"), g("secret_access", "/drop")]),
        ),
        // Another token of the same person: reads /drop only.
        dropReader: running.client("grpc-web", await token([g("secret_access", "/drop")])),
        // May read at /vault and change anything.
        vaultOwner: running.client(
          "grpc",
          await token([g("full_access", "/vault"), g("secret_write", "/")]),
        ),
        globalAdmin: admin,
      });
      // /gone is readable only by tokens that no longer count.
      const revoked = await createTestToken(domain, [g("secret_access", "/gone")]);
      await home.update(tokens).set({ revokedAt: new Date() }).where(eq(tokens.id, revoked.id));
      await token([g("secret_access", "/gone")], { expiresAt: new Date(Date.now() - 60_000) });
    }, 60_000);

    type Mover = keyof typeof who;
    const cases: { mover: Mover; from: string; to: string; want: Want; why: string }[] = [
      {
        mover: "writerAndDrop",
        from: "/vault",
        to: "/drop",
        want: "PERMISSION_DENIED",
        why: "its own access grant at /drop would read what it cannot read at /vault",
      },
      {
        mover: "writer",
        from: "/vault",
        to: "/drop",
        want: "PERMISSION_DENIED",
        why: "another token (dropReader) would gain the payload",
      },
      {
        mover: "writer",
        from: "/vault",
        to: "/drop/deeper",
        want: "PERMISSION_DENIED",
        why: "a grant's prefix covers the folders under it",
      },
      {
        mover: "writer",
        from: "/drop",
        to: "/vault",
        want: "PERMISSION_DENIED",
        why: "vaultOwner reads /vault but not /drop",
      },
      {
        mover: "writer",
        from: "/vault",
        to: "/vault/sub",
        want: "OK",
        why: "whoever reads at /vault/sub reads at /vault",
      },
      {
        mover: "writer",
        from: "/drop",
        to: "/dropped",
        want: "OK",
        why: "/dropped is not under /drop, and no token reads there",
      },
      {
        mover: "writer",
        from: "/vault",
        to: "/gone",
        want: "OK",
        why: "revoked and expired tokens read nothing",
      },
      {
        mover: "writerAndDrop",
        from: "/drop",
        to: "/vault",
        want: "OK",
        why: "it reads the payload at the source, so the move shows nobody more than it could copy",
      },
      {
        mover: "vaultOwner",
        from: "/vault",
        to: "/drop",
        want: "OK",
        why: "it reads the payload at the source, so the move shows nobody more than it could copy",
      },
      {
        mover: "globalAdmin",
        from: "/vault",
        to: "/drop",
        want: "OK",
        why: "an admin reads payloads everywhere",
      },
    ];
    it.each(cases)("$mover moves $from -> $to: $want ($why)", async ({ mover, from, to, want }) => {
      const name = unique("moved");
      const { secret } = await admin.createSecret({
        projectId: M,
        path: from,
        name,
        firstVersion: { data: PAYLOAD },
      });
      const id = secret?.id ?? "";
      const before = await secretOf(id);
      const got = await outcomeOf(who[mover].updateSecret({ secretId: id, path: to }));
      expect(got.code, got.message).toBe(want);
      const after = await secretOf(id);
      if (want === "OK") {
        expect(after?.path).toBe(to);
        return;
      }
      // Refused: nothing changed, the message says why, and the payload is
      // still out of reach of every token that could not read it at `from`.
      expect(after).toEqual(before);
      expect(got.message).toContain(`from ${from} to ${to} would let tokens`);
      expect(got.message).not.toContain("matrix-payload-7f3a");
      for (const reader of ["writerAndDrop", "dropReader"] as const) {
        if (from === "/drop") continue;
        const read = await outcomeOf(
          who[reader].accessSecretVersionByPath({ projectId: M, path: to, name, revision: "1" }),
        );
        expect(read.code).toBe("NOT_FOUND");
      }
    });

    it("refuses the issue's sequence: move to /drop, read, move back", async () => {
      const name = unique("x");
      const { secret } = await admin.createSecret({
        projectId: M,
        path: "/vault",
        name,
        firstVersion: { data: PAYLOAD },
      });
      const id = secret?.id ?? "";
      const attacker = who.writerAndDrop;
      expect(
        (await outcomeOf(attacker.accessSecretVersion({ secretId: id, revision: "1" }))).code,
      ).toBe("PERMISSION_DENIED");
      // Renaming in place and moving within what the same tokens read stay allowed.
      expect(
        (await outcomeOf(attacker.updateSecret({ secretId: id, name: `${name}-r` }))).code,
      ).toBe("OK");
      const moved = await outcomeOf(attacker.updateSecret({ secretId: id, path: "/drop" }));
      expect(moved.code).toBe("PERMISSION_DENIED");
      for (const reader of [attacker, who.dropReader]) {
        const read = await outcomeOf(
          reader.accessSecretVersionByPath({
            projectId: M,
            path: "/drop",
            name: `${name}-r`,
            revision: "latest",
          }),
        );
        expect(read.code).toBe("NOT_FOUND");
        expect(bytesIn(read.response)).toEqual([]);
      }
      // A two-step move through a folder nobody reads ends at the same refusal.
      expect((await outcomeOf(attacker.updateSecret({ secretId: id, path: "/tmp" }))).code).toBe(
        "OK",
      );
      expect((await outcomeOf(attacker.updateSecret({ secretId: id, path: "/drop" }))).code).toBe(
        "PERMISSION_DENIED",
      );
    });
  });

  describe.each(RPCS)("$name", (rpc) => {
    const cases = [
      ...ROLES.flatMap((role) =>
        [...SCOPES, ...(rpc.name === "ListSecrets" ? (["all projects"] as const) : [])].flatMap(
          (scope) =>
            PRINCIPALS.map((principal) => ({
              role,
              principal,
              scope,
              want: expected(rpc, role, scope),
            })),
        ),
      ),
    ];

    it.concurrent.each(cases)(
      "$role ($principal), $scope -> $want",
      async ({ role, principal, scope, want }) => {
        const c = clientOf(role, principal);
        if (rpc.kind === "create") {
          const place = PLACES[scope as Scope];
          // A refused create aims at a name that exists: refusal must come
          // before, and say nothing of, the name being taken.
          const name = want === "OK" ? unique("created") : "db";
          const call = () =>
            c.createSecret({
              ...place,
              name,
              type: SecretType.KEY_VALUE,
              firstVersion: { data: PAYLOAD },
            });
          const got = await outcomeOf(call());
          expect(got.code, got.message).toBe(want);
          const there = await admin.listSecrets({ ...place, name });
          expect(there.totalCount).toBe(1n);
          if (want === "OK") {
            expect(bytesIn(got.response)).toEqual([]);
            expect(checksumsIn(got.response)).toEqual([]);
          }
          if (want === "NOT_FOUND") {
            const other = randomUUID();
            const missing = await outcomeOf(
              c.createSecret({
                projectId: other,
                path: place.path,
                name,
                type: SecretType.KEY_VALUE,
              }),
            );
            expect(missing.code).toBe("NOT_FOUND");
            expect(shape(got.message, { projectId: place.projectId })).toBe(
              shape(missing.message, { projectId: other }),
            );
          }
          return;
        }

        if (rpc.kind === "project") {
          const projectId = scope === "out of project" ? Q : scope === "all projects" ? "" : P;
          const got = await outcomeOf(rpc.call(c, projectId));
          expect(got.code, got.message).toBe(want);
          if (want === "OK") {
            expect(bytesIn(got.response)).toEqual([]);
            const check = CHECKS[rpc.name];
            if (check === undefined) throw new Error(`no check of ${rpc.name}'s answer`);
            await check(c, role, scope);
          }
          if (want === "NOT_FOUND") {
            const other = randomUUID();
            const missing = await outcomeOf(rpc.call(c, other));
            expect(missing.code).toBe("NOT_FOUND");
            expect(shape(got.message, { projectId })).toBe(
              shape(missing.message, { projectId: other }),
            );
          }
          return;
        }

        const place = PLACES[scope as Scope];
        const target = rpc.mutates
          ? await createAt(admin, place, unique("t"), { protected: rpc.mutates.protected ?? false })
          : fixture(scope as Scope);
        let before = target.etag;
        if (rpc.mutates?.prepare) {
          await rpc.mutates.prepare(admin, target);
          before = await etagOf(target);
        }

        const got = await outcomeOf(rpc.call(c, target));
        expect(got.code, got.message).toBe(want);

        if (rpc.mutates) {
          // A refused change changes nothing; an allowed one changes the secret.
          const after = await etagOf(target);
          if (want === "OK") expect(after).not.toBe(before);
          else expect(after).toBe(before);
        }
        if (want === "OK") {
          const payloads = bytesIn(got.response);
          if (rpc.perm === "access") {
            expect(payloads.map((p) => p.path)).toEqual(["response.data"]);
            expect(Buffer.from(payloads[0]?.bytes ?? []).equals(Buffer.from(PAYLOAD))).toBe(true);
            // The checksum comes with the payload, and only with it.
            expect(checksumsIn(got.response)).toEqual(["response.dataCrc32"]);
            expect(got.response).toHaveProperty("dataCrc32", crc32(PAYLOAD));
          } else {
            // Metadata calls never carry a payload, nor its checksum, whoever calls them.
            expect(payloads).toEqual([]);
            expect(checksumsIn(got.response)).toEqual([]);
          }
        }
        if (got.response !== undefined && !PERMISSIONS[role].includes("access")) {
          expect(got.response).not.toHaveProperty("data");
        }
        if (want === "NOT_FOUND") {
          // No existence leak: the hidden secret's answer reads exactly like
          // the answer for one that does not exist.
          const missing = { ...target, id: randomUUID(), name: unique("missing") };
          const absent = await outcomeOf(rpc.call(c, missing));
          expect(absent.code).toBe("NOT_FOUND");
          expect(shape(got.message, target)).toBe(shape(absent.message, missing));
          expect(got.message).not.toMatch(/permission|grant|role|token/i);
        }
      },
    );

    it.concurrent.each(TOKEN_CASES.map((who) => ({ who })))(
      "$who -> UNAUTHENTICATED",
      async ({ who }) => {
        const c = unauthenticated[who];
        const before = await etagOf(tokenTarget);
        let got: Awaited<ReturnType<typeof outcomeOf>>;
        if (rpc.kind === "create") {
          const name = unique("unauthenticated");
          got = await outcomeOf(c.createSecret({ ...PLACES["in scope"], name }));
          expect((await admin.listSecrets({ projectId: P, name })).totalCount).toBe(0n);
        } else if (rpc.kind === "project") {
          got = await outcomeOf(rpc.call(c, P));
        } else {
          got = await outcomeOf(rpc.call(c, rpc.mutates ? tokenTarget : fixture("in scope")));
        }
        expect(got.code, got.message).toBe("UNAUTHENTICATED");
        // One answer for every way of not holding a valid token: a caller
        // cannot tell a revoked or expired token from one never issued.
        expect(got.message).toBe(refusal);
        expect(await etagOf(tokenTarget)).toBe(before);
      },
    );
  });
});
