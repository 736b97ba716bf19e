import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  type IdentityBindingSchema,
  Role,
  type TrustedIssuer,
  type TrustedIssuerSchema,
} from "@coffer/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestToken, OTHER_PROJECT, PROJECT } from "../testing/backends.ts";
import type { AdminClient } from "../testing/clients.ts";
import { type InMemoryServer, inMemoryBackends } from "../testing/in-memory-server.ts";

// AdminService's trusted issuers and identity bindings: validation (each
// refusal names its field and rule) and authorization (issuers: global
// admins; bindings: admin on every project granted, as CreateToken).

type IssuerInit = MessageInitShape<typeof TrustedIssuerSchema>;
type BindingInit = MessageInitShape<typeof IdentityBindingSchema>;

async function refusal(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
  throw new Error("expected a refusal");
}

const JWKS = JSON.stringify({
  keys: [
    {
      kty: "EC",
      crv: "P-256",
      x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
      y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
      kid: "k1",
    },
  ],
});

describe.each(inMemoryBackends)("trusted issuers and identity bindings ($name)", (backend) => {
  let s: InMemoryServer;
  let admin: AdminClient;
  let projectAdmin: AdminClient;
  let reader: AdminClient;
  let issuerId: string;

  beforeAll(async () => {
    s = await backend.start();
    admin = s.adminClient("grpc", s.adminToken);
    const { domain } = s.server;
    projectAdmin = s.adminClient(
      "connect",
      (await createTestToken(domain, [{ projectId: PROJECT, role: "admin", pathPrefix: "/" }]))
        .value,
    );
    reader = s.adminClient(
      "connect",
      (await createTestToken(domain, [{ projectId: PROJECT, role: "read_only", pathPrefix: "/" }]))
        .value,
    );
    issuerId =
      (
        await admin.createTrustedIssuer({
          issuer: {
            name: "cluster",
            issuerUrl: "https://kubernetes.default.svc.cluster.local",
            audiences: ["coffer"],
            keys: { case: "staticJwks", value: JWKS },
          },
        })
      ).issuer?.id ?? "";
  }, 120_000);
  afterAll(() => s?.stop());

  const issuer = (over: Partial<IssuerInit> = {}): { issuer: IssuerInit } => ({
    issuer: {
      name: `issuer-${randomUUID()}`,
      issuerUrl: `https://${randomUUID()}.example.com`,
      audiences: ["coffer"],
      keys: { case: "discovery", value: true },
      ...over,
    } as IssuerInit,
  });
  const binding = (over: Partial<BindingInit> = {}): { binding: BindingInit } => ({
    binding: {
      name: "prod api",
      issuerId,
      conditions: [{ claim: "/kubernetes.io/namespace", value: "prod" }],
      grants: [{ projectId: PROJECT, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
      ...over,
    } as BindingInit,
  });

  it("creates, lists and shows an issuer of each key source", async () => {
    const jwksUrl = "https://keys.example.com/jwks.json";
    const made = await admin.createTrustedIssuer(
      issuer({ keys: { case: "jwksUrl", value: jwksUrl }, audiences: ["a", "b", "a"] }),
    );
    expect(made.issuer).toMatchObject({
      audiences: ["a", "b"],
      keys: { case: "jwksUrl", value: jwksUrl },
    });
    expect(made.issuer?.createdBy).toMatch(/^[0-9a-f-]{36}$/);
    const discovery = await admin.createTrustedIssuer(issuer());
    expect(discovery.issuer?.keys).toEqual({ case: "discovery", value: true });
    const listed = await projectAdmin.listTrustedIssuers({ pageSize: 1000 });
    const byId = new Map(listed.issuers.map((i) => [i.id, i] as [string, TrustedIssuer]));
    // Stored as JSON (jsonb): the same document, its members perhaps in another order.
    const keys = byId.get(issuerId)?.keys;
    expect(keys?.case).toBe("staticJwks");
    expect(JSON.parse(String(keys?.value))).toEqual(JSON.parse(JWKS));
    expect(byId.has(made.issuer?.id ?? "")).toBe(true);
  });

  it.each<[string, Partial<IssuerInit>, string]>([
    ["no name", { name: "" }, "issuer.name: is required"],
    ["no key source", { keys: { case: undefined } }, "issuer.keys: is required"],
    [
      "discovery false",
      { keys: { case: "discovery", value: false } },
      "issuer.discovery: must be true",
    ],
    ["no issuer URL", { issuerUrl: "" }, "issuer.issuer_url: is required"],
    [
      "discovery over plain http",
      { issuerUrl: "http://issuer.example.com" },
      "issuer.issuer_url: must be an https:// URL",
    ],
    [
      "a JWKS URL over plain http",
      { keys: { case: "jwksUrl", value: "http://10.0.0.1/jwks" } },
      "issuer.jwks_url: must be an https:// URL",
    ],
    ["no audience", { audiences: [] }, "issuer.audiences: must hold at least one audience"],
    ["an empty audience", { audiences: ["ok", ""] }, "issuer.audiences[1]: is required"],
    [
      "static keys that are not JSON",
      { keys: { case: "staticJwks", value: "{keys" } },
      "issuer.static_jwks: must be a JWKS document",
    ],
    [
      "static keys without keys",
      { keys: { case: "staticJwks", value: '{"keys":[]}' } },
      "issuer.static_jwks: must hold 1-100 keys",
    ],
    [
      "a static private key",
      {
        keys: {
          case: "staticJwks",
          value: JSON.stringify({
            keys: [{ kty: "EC", crv: "P-256", x: "a", y: "b", d: "SECRETD" }],
          }),
        },
      },
      'issuer.static_jwks: key 1 holds private key material ("d")',
    ],
    [
      "static keys holding an escaped NUL",
      { keys: { case: "staticJwks", value: '{"keys":[{"kty":"EC","kid":"a\\u0000b"}]}' } },
      "issuer.static_jwks: holds a string that must not contain the NUL character",
    ],
    [
      "a static HMAC key",
      {
        keys: {
          case: "staticJwks",
          value: JSON.stringify({ keys: [{ kty: "oct", k: "SECRETK" }] }),
        },
      },
      'issuer.static_jwks: key 1: "kty" must be one of RSA, EC, OKP',
    ],
  ])("refuses an issuer with %s, naming the field", async (_name, over, message) => {
    const got = await refusal(admin.createTrustedIssuer(issuer(over)));
    expect(got.code).toBe(Code.InvalidArgument);
    expect(got.message).toContain(message);
    // Key material is never echoed.
    expect(got.message).not.toMatch(/SECRETD|SECRETK/);
  });

  it("refuses a second issuer with the same name or issuer URL", async () => {
    const first = issuer();
    await admin.createTrustedIssuer(first);
    const sameUrl = issuer({ issuerUrl: first.issuer.issuerUrl ?? "" });
    expect((await refusal(admin.createTrustedIssuer(sameUrl))).code).toBe(Code.AlreadyExists);
    const sameName = issuer({ name: first.issuer.name ?? "" });
    expect((await refusal(admin.createTrustedIssuer(sameName))).code).toBe(Code.AlreadyExists);
  });

  it("lets only global admins create and delete issuers; any admin list them", async () => {
    expect((await refusal(projectAdmin.createTrustedIssuer(issuer()))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await refusal(projectAdmin.deleteTrustedIssuer({ issuerId }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await refusal(reader.listTrustedIssuers({}))).code).toBe(Code.PermissionDenied);
    expect((await refusal(admin.deleteTrustedIssuer({ issuerId: randomUUID() }))).code).toBe(
      Code.NotFound,
    );
    expect((await refusal(admin.deleteTrustedIssuer({ issuerId: "x" }))).message).toContain(
      "issuer_id",
    );
  });

  it("creates a binding, with 15 minutes of token_ttl by default", async () => {
    const made = await projectAdmin.createIdentityBinding(binding());
    expect(made.binding).toMatchObject({
      issuerId,
      conditions: [{ claim: "/kubernetes.io/namespace", value: "prod", glob: false }],
      grants: [{ projectId: PROJECT, role: Role.SECRET_ACCESS, pathPrefix: "/prod" }],
      tokenTtl: { seconds: 900n },
    });
  });

  it.each<[string, Partial<BindingInit>, Code, string]>([
    ["no name", { name: "" }, Code.InvalidArgument, "binding.name: is required"],
    [
      "no condition",
      { conditions: [] },
      Code.InvalidArgument,
      "binding.conditions: must hold at least one",
    ],
    [
      "a condition without a claim",
      { conditions: [{ claim: "", value: "x" }] },
      Code.InvalidArgument,
      "binding.conditions[0].claim: is required",
    ],
    [
      "no grant",
      { grants: [] },
      Code.InvalidArgument,
      "binding.grants: must hold at least one grant",
    ],
    [
      "a grant without a role",
      { grants: [{ projectId: PROJECT, pathPrefix: "/" }] },
      Code.InvalidArgument,
      "binding.grants[0].role: is required",
    ],
    [
      "a token_ttl under a minute",
      { tokenTtl: durationFromMs(30_000) },
      Code.InvalidArgument,
      "binding.token_ttl: must be between 1m and 1h",
    ],
    [
      "a token_ttl over an hour",
      { tokenTtl: durationFromMs(3_600_001) },
      Code.InvalidArgument,
      "binding.token_ttl: must be between 1m and 1h",
    ],
    ["a malformed issuer id", { issuerId: "x" }, Code.InvalidArgument, "binding.issuer_id"],
    ["an unknown issuer", { issuerId: randomUUID() }, Code.NotFound, "trusted issuer"],
  ])("refuses a binding with %s", async (_name, over, code, message) => {
    const got = await refusal(admin.createIdentityBinding(binding(over)));
    expect(got.code).toBe(code);
    expect(got.message).toContain(message);
  });

  it("lets a project admin bind only its own projects, never a global admin", async () => {
    const other = binding({
      grants: [{ projectId: OTHER_PROJECT, role: Role.READ_ONLY, pathPrefix: "/" }],
    });
    // A project it holds no grant on is NOT_FOUND, as a missing one.
    expect((await refusal(projectAdmin.createIdentityBinding(other))).code).toBe(Code.NotFound);
    const both = binding({
      grants: [
        { projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" },
        { projectId: OTHER_PROJECT, role: Role.READ_ONLY, pathPrefix: "/" },
      ],
    });
    expect((await refusal(projectAdmin.createIdentityBinding(both))).code).toBe(Code.NotFound);
    const global = binding({ grants: [{ projectId: "", role: Role.ADMIN, pathPrefix: "/" }] });
    expect((await refusal(projectAdmin.createIdentityBinding(global))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await refusal(reader.createIdentityBinding(binding()))).code).toBe(
      Code.PermissionDenied,
    );
    // A global admin may.
    expect((await admin.createIdentityBinding(global)).binding?.grants).toHaveLength(1);
  });

  it("lists to a project admin only the bindings it may delete, and hides the others", async () => {
    const mine = (await projectAdmin.createIdentityBinding(binding({ name: "mine" }))).binding;
    const theirs = (
      await admin.createIdentityBinding(
        binding({
          name: "theirs",
          grants: [
            { projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" },
            { projectId: OTHER_PROJECT, role: Role.READ_ONLY, pathPrefix: "/" },
          ],
        }),
      )
    ).binding;
    const seen = (await projectAdmin.listIdentityBindings({ pageSize: 1000 })).bindings.map(
      (b) => b.id,
    );
    expect(seen).toContain(mine?.id);
    expect(seen).not.toContain(theirs?.id);
    const all = (await admin.listIdentityBindings({ issuerId, pageSize: 1000 })).bindings;
    expect(all.map((b) => b.id)).toEqual(expect.arrayContaining([mine?.id, theirs?.id]));
    const onOther = (await admin.listIdentityBindings({ projectId: OTHER_PROJECT })).bindings;
    expect(onOther.map((b) => b.id)).toContain(theirs?.id);
    expect(onOther.map((b) => b.id)).not.toContain(mine?.id);
    expect(
      (await refusal(projectAdmin.listIdentityBindings({ projectId: OTHER_PROJECT }))).code,
    ).toBe(Code.NotFound);

    expect(
      (await refusal(projectAdmin.deleteIdentityBinding({ bindingId: theirs?.id ?? "" }))).code,
    ).toBe(Code.NotFound);
    const deleted = await projectAdmin.deleteIdentityBinding({ bindingId: mine?.id ?? "" });
    expect(deleted).toMatchObject({ binding: { id: mine?.id }, revokedTokens: 0n });
    expect(
      (await refusal(projectAdmin.deleteIdentityBinding({ bindingId: mine?.id ?? "" }))).code,
    ).toBe(Code.NotFound);
  });

  it("pages the lists with page tokens", async () => {
    for (let i = 0; i < 3; i++) await admin.createTrustedIssuer(issuer({ name: `paged-${i}` }));
    const first = await admin.listTrustedIssuers({ pageSize: 2 });
    expect(first.issuers).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    const second = await admin.listTrustedIssuers({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.issuers[0]?.name).not.toBe(first.issuers[1]?.name);
    expect(second.totalCount).toBe(first.totalCount);
  });

  it("takes a deleted project's grants off bindings, and deletes those left with none", async () => {
    const { project } = await admin.createProject({ name: `doomed-${randomUUID()}` });
    const doomed = project?.id ?? "";
    const mixed = (
      await admin.createIdentityBinding(
        binding({
          grants: [
            { projectId: PROJECT, role: Role.READ_ONLY, pathPrefix: "/" },
            { projectId: doomed, role: Role.READ_ONLY, pathPrefix: "/" },
          ],
        }),
      )
    ).binding;
    const only = (
      await admin.createIdentityBinding(
        binding({ grants: [{ projectId: doomed, role: Role.READ_ONLY, pathPrefix: "/" }] }),
      )
    ).binding;
    await admin.deleteProject({ projectId: doomed });
    const left = new Map(
      (await admin.listIdentityBindings({ pageSize: 1000 })).bindings.map((b) => [b.id, b]),
    );
    expect(left.get(mixed?.id ?? "")?.grants.map((g) => g.projectId)).toEqual([PROJECT]);
    expect(left.has(only?.id ?? "")).toBe(false);
  });

  it("deletes an issuer with its bindings", async () => {
    const made = (
      await admin.createTrustedIssuer(issuer({ keys: { case: "staticJwks", value: JWKS } }))
    ).issuer;
    await admin.createIdentityBinding(binding({ issuerId: made?.id ?? "" }));
    await admin.createIdentityBinding(binding({ issuerId: made?.id ?? "" }));
    const gone = await admin.deleteTrustedIssuer({ issuerId: made?.id ?? "" });
    expect(gone).toMatchObject({ deletedBindings: 2n, revokedTokens: 0n });
    const left = await admin.listIdentityBindings({ issuerId: made?.id ?? "" });
    expect(left.bindings).toEqual([]);
  });
});
