import { randomUUID } from "node:crypto";
import { Role as ProtoRole, SecretType } from "@coffer/api";
import { eq } from "drizzle-orm";
import { generateToken } from "../crypto/tokens.ts";
import { projects, tokens } from "../db/schema.ts";
import type { Grant, Role } from "../domain/caller.ts";
import type { DomainDeps } from "../domain/context.ts";
import { createTestToken } from "./backends.ts";
import type { AdminClient, AuthClient, SecretClient } from "./clients.ts";
import { type TestOidcIssuer, trustTestIssuer } from "./oidc-issuer.ts";

/**
 * The authorization matrix's cases (issue 3, item 8), shared by every
 * transport that serves SecretService: who (a role granted on project P,
 * narrowed to /prod), on what (a secret in each place relative to that
 * grant), calling what (each RPC, with the permission it needs), must get
 * which outcome. `rpc/authorization.test.ts` runs them over gRPC, Connect
 * and gRPC-Web; `scaleway/authorization.int.test.ts` over the Scaleway REST
 * API, whose answers must be the same. Each RPC's `call` is its SecretService
 * call; another transport maps the RPC's name to its own request.
 */

/** `admin`: what only a project's admins may do to its secrets (DestroySecretVersion). */
export type Permission = "read" | "write" | "access" | "admin";
export type Want = "OK" | "PERMISSION_DENIED" | "NOT_FOUND" | "UNAUTHENTICATED";

/** SPEC section 4, restated here so that the test does not trust the code's own table. */
export const PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: ["read", "write", "access", "admin"],
  full_access: ["read", "write", "access"],
  secret_write: ["read", "write"],
  read_only: ["read"],
  secret_access: ["access"],
};
export const ROLES = Object.keys(PERMISSIONS) as Role[];

export const P = randomUUID();
export const Q = randomUUID();
export const GRANTED = "/prod";

/** Where a target lies relative to the grant (P, /prod). */
export type Scope = "in scope" | "out of project" | "outside prefix" | "sibling of prefix";
export const PLACES: Record<Scope, { projectId: string; path: string }> = {
  "in scope": { projectId: P, path: "/prod" },
  "out of project": { projectId: Q, path: "/prod" },
  "outside prefix": { projectId: P, path: "/staging" },
  // A prefix is a folder, not a string prefix: /prodigal is not under /prod.
  "sibling of prefix": { projectId: P, path: "/prodigal" },
};
export const SCOPES = Object.keys(PLACES) as Scope[];

/** Callers without a valid token; each would be a global admin if its token counted. */
export const TOKEN_CASES = [
  "no token",
  "malformed token",
  "unknown token",
  "revoked token",
  "expired token",
] as const;
export type TokenCase = (typeof TOKEN_CASES)[number];

export const PAYLOAD = new TextEncoder().encode(
  JSON.stringify({ password: "matrix-payload-7f3a" }),
);
export const LIST_TAG = "listed";
export const TAG: Record<Scope | "root", string> = {
  "in scope": "tag-prod",
  "out of project": "tag-other-project",
  "outside prefix": "tag-staging",
  "sibling of prefix": "tag-prodigal",
  root: "tag-root",
};
/** One type per place, so that a type list shows which places leaked into it. */
export const LISTED_TYPE: Record<Scope | "root", SecretType> = {
  "in scope": SecretType.OPAQUE,
  "out of project": SecretType.BASIC_CREDENTIALS,
  "outside prefix": SecretType.SSH_KEY,
  "sibling of prefix": SecretType.DATABASE_CREDENTIALS,
  root: SecretType.CERTIFICATE,
};

export interface Target {
  id: string;
  projectId: string;
  path: string;
  name: string;
  /** As created. */
  etag?: string;
}

/** An RPC addressing one secret (by id, or by path for AccessSecretVersionByPath). */
export interface SecretRpc {
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
export interface CreateRpc {
  kind: "create";
  name: string;
  perm: "write";
}

/** Project-wide reads, filtered to what the token may read. */
export interface ProjectRpc {
  kind: "project";
  name: string;
  perm: "read";
  call(c: SecretClient, projectId: string): Promise<unknown>;
}

export type Rpc = SecretRpc | CreateRpc | ProjectRpc;

export const v1 = (t: Target) => ({ secretId: t.id, revision: "1" });

export const RPCS: readonly Rpc[] = [
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
  },
  {
    kind: "project",
    name: "BrowseSecrets",
    perm: "read",
    call: (c, projectId) => c.browseSecrets({ projectId, prefix: "/" }),
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
  },
  {
    kind: "project",
    name: "ListSecretTypes",
    perm: "read",
    call: (c, projectId) => c.listSecretTypes({ projectId }),
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
export function expected(rpc: Rpc, role: Role, scope: Scope | "all projects"): Want {
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
export function shape(
  message: string,
  t: { id?: string; projectId?: string; name?: string },
): string {
  let s = message;
  if (t.id) s = s.replaceAll(t.id, "<id>");
  if (t.projectId) s = s.replaceAll(t.projectId, "<project>");
  if (t.name) s = s.replaceAll(`"${t.name}"`, '"<name>"');
  return s;
}

export const isUnder = (path: string, prefix: string) =>
  path === prefix || path.startsWith(`${prefix}/`);

/** A secret of KEY_VALUE type at `place`, with PAYLOAD as its version 1, created by `admin`. */
export async function createAt(
  admin: SecretClient,
  place: { projectId: string; path: string },
  name: string,
  extra: { protected?: boolean } = {},
): Promise<Target> {
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
}

/** The tokens of the matrix, stored in the home database. */
export interface MatrixTokens {
  /** A global admin, who sets every case up. */
  admin: string;
  /** Each role, granted on P at GRANTED. */
  roles: Record<Role, string>;
  /** What each caller without a valid token sends; undefined sends none. */
  invalid: Record<TokenCase, string | undefined>;
}

/** Creates the projects P and Q and the matrix's tokens. */
export async function matrixTokens(domain: DomainDeps): Promise<MatrixTokens> {
  const home = domain.regions.resolve("").db;
  await home.insert(projects).values([
    { id: P, name: "matrix-p" },
    { id: Q, name: "matrix-q" },
  ]);
  const globalAdmin: Grant[] = [{ projectId: "", role: "admin", pathPrefix: "/" }];
  const admin = (await createTestToken(domain, globalAdmin)).value;
  const roles = {} as Record<Role, string>;
  for (const role of ROLES) {
    roles[role] = (
      await createTestToken(domain, [{ projectId: P, role, pathPrefix: GRANTED }])
    ).value;
  }
  // The callers without a valid token would all be global admins if their token counted.
  const revoked = await createTestToken(domain, globalAdmin);
  await home.update(tokens).set({ revokedAt: new Date() }).where(eq(tokens.id, revoked.id));
  const expired = await createTestToken(domain, globalAdmin, {
    expiresAt: new Date(Date.now() - 60_000),
  });
  return {
    admin,
    roles,
    invalid: {
      "no token": undefined,
      "malformed token": "coffer_not-a-token",
      "unknown token": generateToken().value,
      "revoked token": revoked.value,
      "expired token": expired.value,
    },
  };
}

/** What every case reads or aims at, made by the admin. */
export interface MatrixFixtures {
  /** A secret named "db" in each place, with PAYLOAD as version 1: the read targets. */
  fixtures: Record<Scope, Target>;
  /** A secret only the callers without a valid token aim at: nothing may change it. */
  tokenTarget: Target;
}

/**
 * Creates the read targets, the token target and the list targets: one
 * tagged secret per place (of a type of its own), one at the root and one
 * below /prod.
 */
export async function seedMatrix(admin: SecretClient): Promise<MatrixFixtures> {
  const fixtures = {} as Record<Scope, Target>;
  for (const scope of SCOPES) fixtures[scope] = await createAt(admin, PLACES[scope], "db");
  const tokenTarget = await createAt(admin, PLACES["in scope"], "token-target");
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
  return { fixtures, tokenTarget };
}

/**
 * The principals of the matrix: a token stored as CreateToken stores it, and
 * a token from AuthService.ExchangeToken with the same grants (through an
 * identity binding). They must get the same outcome in every case.
 */
export const PRINCIPALS = ["static token", "exchanged token"] as const;
export type PrincipalKind = (typeof PRINCIPALS)[number];

const PROTO_ROLE: Record<Role, ProtoRole> = {
  admin: ProtoRole.ADMIN,
  full_access: ProtoRole.FULL_ACCESS,
  secret_write: ProtoRole.SECRET_WRITE,
  read_only: ProtoRole.READ_ONLY,
  secret_access: ProtoRole.SECRET_ACCESS,
};

/**
 * For each role, a token exchanged for a JWT of `issuer` through a binding
 * that grants that role on P at GRANTED (the matrix's static tokens'
 * grants). `admin` is a global admin AdminService client.
 */
export async function exchangedMatrixTokens(
  admin: AdminClient,
  auth: AuthClient,
  issuer: TestOidcIssuer,
): Promise<Record<Role, string>> {
  const { issuerId } = await trustTestIssuer(admin, issuer, {
    grants: [{ projectId: P, role: ProtoRole.ADMIN, pathPrefix: GRANTED }],
    conditions: [{ claim: "sub", value: "matrix-admin" }],
    tokenTtlS: 3600,
  });
  const out = {} as Record<Role, string>;
  for (const role of ROLES) {
    if (role !== "admin") {
      await admin.createIdentityBinding({
        binding: {
          name: `matrix ${role}`,
          issuerId,
          conditions: [{ claim: "sub", value: `matrix-${role}` }],
          grants: [{ projectId: P, role: PROTO_ROLE[role], pathPrefix: GRANTED }],
          tokenTtl: { seconds: 3600n, nanos: 0 },
        },
      });
    }
    const jwt = await issuer.sign({ claims: { sub: `matrix-${role}` }, expiresInS: 3600 });
    const { value, token } = await auth.exchangeToken({ jwt });
    const grants = token?.grants.map((g) => [g.projectId, g.role, g.pathPrefix]);
    if (JSON.stringify(grants) !== JSON.stringify([[P, PROTO_ROLE[role], GRANTED]])) {
      throw new Error(`the exchanged ${role} token has other grants than the static one`);
    }
    out[role] = value;
  }
  return out;
}
