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
import { generateToken } from "../crypto/tokens.ts";
import { projects, tokens } from "../db/schema.ts";
import type { Grant, Role } from "../domain/caller.ts";
import { createTestToken } from "../testing/backends.ts";
import type { Protocol, SecretClient } from "../testing/clients.ts";
import { type InMemoryServer, inMemoryBackends } from "../testing/in-memory-server.ts";
import { bytesIn, outcomeOf } from "../testing/rpc-servers.ts";

/**
 * The authorization matrix (issue 3, item 8): every SecretService RPC, called
 * through a real client (in memory: the rule does not depend on the
 * transport) by a token of every role granted on project P
 * narrowed to /prod, on a secret in each place relative to that grant, and
 * by callers without a valid token. Each case asserts the exact code, that a
 * hidden secret's NOT_FOUND reads exactly like a missing one's, that a
 * refused change changed nothing, and that roles without `access` never see
 * a payload.
 */

/** `admin`: what only a project's admins may do to its secrets (DestroySecretVersion). */
type Permission = "read" | "write" | "access" | "admin";
type Want = "OK" | "PERMISSION_DENIED" | "NOT_FOUND" | "UNAUTHENTICATED";

/** SPEC section 4, restated here so that the test does not trust the code's own table. */
const PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: ["read", "write", "access", "admin"],
  full_access: ["read", "write", "access"],
  secret_write: ["read", "write"],
  read_only: ["read"],
  secret_access: ["access"],
};
const ROLES = Object.keys(PERMISSIONS) as Role[];

/** Each role's client speaks another protocol: authorization must not depend on it. */
const PROTOCOL: Record<Role | "admin-setup", Protocol> = {
  "admin-setup": "connect",
  admin: "grpc",
  full_access: "connect",
  secret_write: "grpc-web",
  read_only: "grpc",
  secret_access: "connect",
};

const P = randomUUID();
const Q = randomUUID();
const GRANTED = "/prod";

/** Where a target lies relative to the grant (P, /prod). */
type Scope = "in scope" | "out of project" | "outside prefix" | "sibling of prefix";
const PLACES: Record<Scope, { projectId: string; path: string }> = {
  "in scope": { projectId: P, path: "/prod" },
  "out of project": { projectId: Q, path: "/prod" },
  "outside prefix": { projectId: P, path: "/staging" },
  // A prefix is a folder, not a string prefix: /prodigal is not under /prod.
  "sibling of prefix": { projectId: P, path: "/prodigal" },
};
const SCOPES = Object.keys(PLACES) as Scope[];

/** Callers without a valid token; each would be a global admin if its token counted. */
const TOKEN_CASES = [
  "no token",
  "malformed token",
  "unknown token",
  "revoked token",
  "expired token",
] as const;
type TokenCase = (typeof TOKEN_CASES)[number];

const PAYLOAD = new TextEncoder().encode(JSON.stringify({ password: "matrix-payload-7f3a" }));
const LIST_TAG = "listed";
const TAG: Record<Scope | "root", string> = {
  "in scope": "tag-prod",
  "out of project": "tag-other-project",
  "outside prefix": "tag-staging",
  "sibling of prefix": "tag-prodigal",
  root: "tag-root",
};
/** One type per place, so that a type list shows which places leaked into it. */
const LISTED_TYPE: Record<Scope | "root", SecretType> = {
  "in scope": SecretType.OPAQUE,
  "out of project": SecretType.BASIC_CREDENTIALS,
  "outside prefix": SecretType.SSH_KEY,
  "sibling of prefix": SecretType.DATABASE_CREDENTIALS,
  root: SecretType.CERTIFICATE,
};

interface Target {
  id: string;
  projectId: string;
  path: string;
  name: string;
  /** As created. */
  etag?: string;
}

/** An RPC addressing one secret (by id, or by path for AccessSecretVersionByPath). */
interface SecretRpc {
  kind: "secret";
  name: string;
  perm: Permission;
  /**
   * Set for RPCs that change something: each case gets a fresh target,
   * brought by the admin into a state where the call has work to do.
   */
  mutates?: { protected?: boolean; prepare?: (admin: SecretClient, t: Target) => Promise<unknown> };
  call(c: SecretClient, t: Target): Promise<unknown>;
}

/** CreateSecret: addressed by the place it would create in. */
interface CreateRpc {
  kind: "create";
  name: string;
  perm: "write";
}

/** Project-wide reads, filtered to what the token may read. */
interface ProjectRpc {
  kind: "project";
  name: string;
  perm: "read";
  call(c: SecretClient, projectId: string): Promise<unknown>;
  /** Checks an allowed answer for a scope: what it shows and what it must hide. */
  check(c: SecretClient, role: Role, scope: Scope | "all projects"): Promise<void>;
}

type Rpc = SecretRpc | CreateRpc | ProjectRpc;

const v1 = (t: Target) => ({ secretId: t.id, revision: "1" });

const RPCS: Rpc[] = [
  { kind: "create", name: "CreateSecret", perm: "write" },
  {
    kind: "secret",
    name: "GetSecret",
    perm: "read",
    call: (c, t) => c.getSecret({ secretId: t.id }),
  },
  {
    kind: "secret",
    name: "UpdateSecret",
    perm: "write",
    mutates: {},
    call: (c, t) => c.updateSecret({ secretId: t.id, description: "changed" }),
  },
  {
    kind: "secret",
    name: "DeleteSecret",
    perm: "write",
    mutates: {},
    call: (c, t) => c.deleteSecret({ secretId: t.id }),
  },
  {
    kind: "secret",
    name: "RestoreSecret",
    perm: "write",
    mutates: { prepare: (admin, t) => admin.deleteSecret({ secretId: t.id }) },
    call: (c, t) => c.restoreSecret({ secretId: t.id }),
  },
  {
    kind: "project",
    name: "ListSecrets",
    perm: "read",
    call: (c, projectId) => c.listSecrets({ projectId }),
    check: checkListSecrets,
  },
  {
    kind: "project",
    name: "BrowseSecrets",
    perm: "read",
    call: (c, projectId) => c.browseSecrets({ projectId, prefix: "/" }),
    check: checkBrowse,
  },
  {
    kind: "secret",
    name: "ProtectSecret",
    perm: "write",
    mutates: {},
    call: (c, t) => c.protectSecret({ secretId: t.id }),
  },
  {
    kind: "secret",
    name: "UnprotectSecret",
    perm: "write",
    mutates: { protected: true },
    call: (c, t) => c.unprotectSecret({ secretId: t.id }),
  },
  {
    kind: "project",
    name: "ListTags",
    perm: "read",
    call: (c, projectId) => c.listTags({ projectId }),
    check: async (c, _role, scope) => {
      const { tags, totalCount } = await c.listTags({ projectId: P, pageSize: 1000 });
      // Only the secrets under /prod carry tags a /prod token may see.
      expect([...tags].sort()).toEqual([LIST_TAG, TAG["in scope"]].sort());
      expect(totalCount).toBe(2n);
      if (scope !== "in scope" && scope !== "all projects") expect(tags).not.toContain(TAG[scope]);
    },
  },
  {
    kind: "project",
    name: "ListSecretTypes",
    perm: "read",
    call: (c, projectId) => c.listSecretTypes({ projectId }),
    check: async (c, _role, scope) => {
      const { types } = await c.listSecretTypes({ projectId: P });
      expect([...types].sort()).toEqual([SecretType.OPAQUE, SecretType.KEY_VALUE].sort());
      if (scope !== "in scope" && scope !== "all projects") {
        expect(types).not.toContain(LISTED_TYPE[scope]);
      }
    },
  },
  {
    kind: "secret",
    name: "CreateSecretVersion",
    perm: "write",
    mutates: {},
    call: (c, t) => c.createSecretVersion({ secretId: t.id, data: PAYLOAD }),
  },
  {
    kind: "secret",
    name: "GetSecretVersion",
    perm: "read",
    call: (c, t) => c.getSecretVersion(v1(t)),
  },
  {
    kind: "secret",
    name: "UpdateSecretVersion",
    perm: "write",
    mutates: {},
    call: (c, t) => c.updateSecretVersion({ ...v1(t), description: "changed" }),
  },
  {
    kind: "secret",
    name: "ListSecretVersions",
    perm: "read",
    call: (c, t) => c.listSecretVersions({ secretId: t.id }),
  },
  {
    kind: "secret",
    name: "AccessSecretVersion",
    perm: "access",
    call: (c, t) => c.accessSecretVersion(v1(t)),
  },
  {
    kind: "secret",
    name: "AccessSecretVersionByPath",
    perm: "access",
    call: (c, t) =>
      c.accessSecretVersionByPath({
        projectId: t.projectId,
        path: t.path,
        name: t.name,
        revision: "latest_enabled",
      }),
  },
  {
    kind: "secret",
    name: "EnableSecretVersion",
    perm: "write",
    mutates: { prepare: (admin, t) => admin.disableSecretVersion(v1(t)) },
    call: (c, t) => c.enableSecretVersion(v1(t)),
  },
  {
    kind: "secret",
    name: "DisableSecretVersion",
    perm: "write",
    mutates: {},
    call: (c, t) => c.disableSecretVersion(v1(t)),
  },
  {
    kind: "secret",
    name: "DeleteSecretVersion",
    perm: "write",
    mutates: {},
    call: (c, t) => c.deleteSecretVersion(v1(t)),
  },
  {
    kind: "secret",
    name: "RestoreSecretVersion",
    perm: "write",
    mutates: { prepare: (admin, t) => admin.deleteSecretVersion(v1(t)) },
    call: (c, t) => c.restoreSecretVersion(v1(t)),
  },
  {
    kind: "secret",
    name: "DestroySecretVersion",
    perm: "admin",
    mutates: {},
    call: (c, t) => c.destroySecretVersion(v1(t)),
  },
];

/** The code a role must get for an RPC on a target in a scope. */
function expected(rpc: Rpc, role: Role, scope: Scope | "all projects"): Want {
  const allowed = PERMISSIONS[role].includes(rpc.perm);
  switch (rpc.kind) {
    case "secret":
      // Outside every grant, a secret is NOT_FOUND exactly as a missing one.
      if (scope !== "in scope") return "NOT_FOUND";
      return allowed ? "OK" : "PERMISSION_DENIED";
    case "create":
      // Creating names no existing secret, so only the project is hidden;
      // a place the grants do not cover is refused.
      if (scope === "out of project") return "NOT_FOUND";
      return scope === "in scope" && allowed ? "OK" : "PERMISSION_DENIED";
    case "project":
      if (scope === "all projects") return "OK";
      if (scope === "out of project") return "NOT_FOUND";
      return allowed ? "OK" : "PERMISSION_DENIED";
  }
}

/** A message with the identifiers of what it is about blanked, to compare shapes. */
function shape(message: string, t: { id?: string; projectId?: string; name?: string }): string {
  let s = message;
  if (t.id) s = s.replaceAll(t.id, "<id>");
  if (t.projectId) s = s.replaceAll(t.projectId, "<project>");
  if (t.name) s = s.replaceAll(`"${t.name}"`, '"<name>"');
  return s;
}

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

const isUnder = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

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

// Fixtures and clients, per backend (set in beforeAll).

let fixtures: Record<Scope, Target>;
const fixture = (scope: Scope) => fixtures[scope];

describe.each(inMemoryBackends)("authorization matrix on $name", (backend) => {
  let running: InMemoryServer;
  let admin: SecretClient;
  const clients = {} as Record<Role, SecretClient>;
  /** Callers without a valid token, each with the client it calls through. */
  const unauthenticated = {} as Record<TokenCase, SecretClient>;
  /** What a caller without a token is told. */
  let refusal: string;
  /** A secret only the token cases aim at: nothing may change it. */
  let tokenTarget: Target;
  let n = 0;
  const unique = (prefix: string) => `${prefix}-${++n}`;

  const createAt = async (
    place: { projectId: string; path: string },
    name: string,
    extra: { protected?: boolean } = {},
  ): Promise<Target> => {
    const { secret } = await admin.createSecret({
      ...place,
      name,
      type: SecretType.KEY_VALUE,
      firstVersion: { data: PAYLOAD },
      ...extra,
    });
    if (secret === undefined) throw new Error("no secret created");
    const { id, projectId, path, name: created, etag } = secret;
    return { id, projectId, path, name: created, etag };
  };
  const etagOf = async (t: Target) => (await admin.getSecret({ secretId: t.id })).secret?.etag;

  beforeAll(async () => {
    running = await backend.start();
    const { domain } = running.server;
    const home = domain.regions.resolve("").db;
    await home.insert(projects).values([
      { id: P, name: "matrix-p" },
      { id: Q, name: "matrix-q" },
    ]);
    const globalAdmin: Grant[] = [{ projectId: "", role: "admin", pathPrefix: "/" }];
    admin = running.client(
      PROTOCOL["admin-setup"],
      (await createTestToken(domain, globalAdmin)).value,
    );
    for (const role of ROLES) {
      const token = await createTestToken(domain, [{ projectId: P, role, pathPrefix: GRANTED }]);
      clients[role] = running.client(PROTOCOL[role], token.value);
    }
    // The unauthenticated callers would all be global admins if their token counted.
    const revoked = await createTestToken(domain, globalAdmin);
    await home.update(tokens).set({ revokedAt: new Date() }).where(eq(tokens.id, revoked.id));
    const expired = await createTestToken(domain, globalAdmin, {
      expiresAt: new Date(Date.now() - 60_000),
    });
    Object.assign(unauthenticated, {
      "no token": running.client("grpc-web"),
      "malformed token": running.client("grpc", "coffer_not-a-token"),
      "unknown token": running.client("connect", generateToken().value),
      "revoked token": running.client("grpc", revoked.value),
      "expired token": running.client("grpc-web", expired.value),
    } satisfies Record<TokenCase, SecretClient>);
    const anonymous = await outcomeOf(running.client("connect").getSecret({ secretId: P }));
    expect(anonymous.code).toBe("UNAUTHENTICATED");
    expect(anonymous.message).toContain("authorization: Bearer");
    refusal = anonymous.message;

    // Read targets: /prod/db and its twins in each other place.
    fixtures = {} as Record<Scope, Target>;
    for (const scope of SCOPES) fixtures[scope] = await createAt(PLACES[scope], "db");
    tokenTarget = await createAt(PLACES["in scope"], "token-target");
    // List targets: one tagged secret per place, plus one below /prod and one at the root.
    const listed = async (scope: Scope | "root", place: { projectId: string; path: string }) =>
      admin.createSecret({
        ...place,
        name: "listed",
        type: LISTED_TYPE[scope],
        tags: [LIST_TAG, TAG[scope]],
      });
    for (const scope of SCOPES) await listed(scope, PLACES[scope]);
    await listed("root", { projectId: P, path: "/" });
    await admin.createSecret({ projectId: P, path: "/prod/app", name: "listed", tags: [LIST_TAG] });
  }, 180_000);
  afterAll(() => running?.stop());

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
        [...SCOPES, ...(rpc.name === "ListSecrets" ? (["all projects"] as const) : [])].map(
          (scope) => ({ role, scope, want: expected(rpc, role, scope) }),
        ),
      ),
    ];

    it.concurrent.each(cases)("$role, $scope -> $want", async ({ role, scope, want }) => {
      const c = clients[role];
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
          await rpc.check(c, role, scope);
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
        ? await createAt(place, unique("t"), { protected: rpc.mutates.protected ?? false })
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
    });

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
