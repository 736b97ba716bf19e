import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeAdmin, startFakeAdmin } from "../fake-admin.ts";
import { run } from "../run.ts";
import { memoryContext } from "../test-io.ts";

/**
 * `coffer issuer`, `coffer binding` and signing in with a JWT file
 * (COFFER_JWT_FILE, --jwt-file), against a scripted server: what each
 * command sends and shows.
 */

const ISSUER_ID = "5d3f4a0e-7a39-4b6c-9d1e-2f3a4b5c6d7e";
const BINDING_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const PROJECT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e";
const JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvc2hvcCJ9.c2lnbmF0dXJl";

let fake: FakeAdmin;
let dir = "";
beforeAll(async () => {
  fake = await startFakeAdmin();
  dir = await mkdtemp(path.join(tmpdir(), "coffer-cli-identity-"));
});
afterAll(async () => {
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  fake.calls.length = 0;
});

const ISSUER = {
  id: ISSUER_ID,
  name: "github",
  issuerUrl: "https://token.actions.githubusercontent.com",
  audiences: ["coffer"],
  discovery: true,
  createdAt: "2026-12-06T00:00:00Z",
};

async function coffer(env: NodeJS.ProcessEnv, ...argv: string[]) {
  const ctx = memoryContext({
    env: { COFFER_CONFIG: path.join(dir, "config.json"), COFFER_URL: fake.url, ...env },
  });
  const code = await run(argv, ctx);
  return { code, stdout: ctx.stdout.text, stderr: ctx.stderr.text };
}
const admin = (...argv: string[]) => coffer({ COFFER_TOKEN: "coffer_admin" }, ...argv);

describe("coffer issuer", () => {
  it("create trusts an issuer by discovery unless told where its keys are", async () => {
    fake.on("CreateTrustedIssuer", (m) => ({ issuer: { ...(m.issuer as object), id: ISSUER_ID } }));
    const r = await admin(
      "issuer",
      "create",
      "--name",
      "github",
      "--issuer-url",
      "https://token.actions.githubusercontent.com",
      "--audience",
      "coffer",
      "--audience",
      "sts.amazonaws.com",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(fake.calls[0]).toEqual({
      method: "CreateTrustedIssuer",
      authorization: "Bearer coffer_admin",
      message: {
        issuer: {
          name: "github",
          issuerUrl: "https://token.actions.githubusercontent.com",
          audiences: ["coffer", "sts.amazonaws.com"],
          discovery: true,
        },
      },
    });
    expect(r.stdout).toContain(`Trusted issuer github (id ${ISSUER_ID}).`);
    expect(r.stdout).toMatch(/keys:\s+discovery/);
    expect(r.stderr).toContain("coffer binding create --issuer github");

    await admin(
      "issuer",
      "create",
      "--name",
      "k",
      "--issuer-url",
      "https://k8s",
      "--audience",
      "coffer",
      "--jwks-url",
      "https://k8s/openid/v1/jwks",
    );
    expect(fake.calls.at(-1)?.message.issuer).toMatchObject({
      jwksUrl: "https://k8s/openid/v1/jwks",
    });
  });

  it("create sends a static JWKS file as it is, and refuses one that is not a JWKS", async () => {
    fake.on("CreateTrustedIssuer", (m) => ({ issuer: { ...(m.issuer as object), id: ISSUER_ID } }));
    const jwks = JSON.stringify({ keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y", kid: "1" }] });
    const file = path.join(dir, "jwks.json");
    await writeFile(file, jwks);
    const args = [
      "issuer",
      "create",
      "--name",
      "k",
      "--issuer-url",
      "https://k8s",
      "--audience",
      "c",
    ];
    const r = await admin(...args, "--static-jwks-file", file, "-o", "json");
    expect(r.code, r.stderr).toBe(0);
    expect(fake.calls[0]?.message.issuer).toMatchObject({ staticJwks: jwks });
    expect(JSON.parse(r.stdout).issuer).toMatchObject({ id: ISSUER_ID, staticJwks: jwks });

    await writeFile(file, "{}");
    const bad = await admin(...args, "--static-jwks-file", file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`--static-jwks-file ${file} is not a JWKS document`);
    const both = await admin(...args, "--static-jwks-file", file, "--jwks-url", "https://x");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give --jwks-url or --static-jwks-file, not both");
    const noAudience = await admin("issuer", "create", "--name", "k", "--issuer-url", "https://k");
    expect(noAudience.code).toBe(2);
    expect(noAudience.stderr).toContain("an issuer needs at least one --audience");
    expect(fake.calls.filter((c) => c.method === "CreateTrustedIssuer")).toHaveLength(1);
  });

  it("list shows a table; delete takes an id or a name and says what went with it", async () => {
    fake.on("ListTrustedIssuers", () => ({ issuers: [ISSUER], totalCount: "1" }));
    fake.on("DeleteTrustedIssuer", () => ({
      issuer: ISSUER,
      deletedBindings: "2",
      revokedTokens: "3",
    }));
    const list = await admin("issuer", "list");
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(
      /^ID\s+NAME\s+ISSUER URL\s+AUDIENCES\s+KEYS\s+CREATED$/,
    );
    expect(list.stdout).toContain("https://token.actions.githubusercontent.com");
    fake.calls.length = 0;
    const del = await admin("issuer", "delete", "github");
    expect(del.code, del.stderr).toBe(0);
    expect(fake.calls.map((c) => c.method)).toEqual(["ListTrustedIssuers", "DeleteTrustedIssuer"]);
    expect(fake.calls[1]?.message).toEqual({ issuerId: ISSUER_ID });
    expect(del.stdout).toBe(
      `Deleted trusted issuer github (id ${ISSUER_ID}): 2 binding(s) deleted, 3 token(s) revoked.\n`,
    );
    const missing = await admin("issuer", "delete", "gitlab");
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('no trusted issuer named "gitlab"');
  });

  it("update sends only what is given, naming the issuer by name, URL or id", async () => {
    fake.on("ListTrustedIssuers", () => ({ issuers: [ISSUER], totalCount: "1" }));
    fake.on("UpdateTrustedIssuer", (m) => ({
      issuer: { ...ISSUER, ...(m.name !== undefined && { name: m.name }) },
    }));
    const jwks = JSON.stringify({ keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y", kid: "2" }] });
    const file = path.join(dir, "rotated.json");
    await writeFile(file, jwks);
    const rotated = await admin("issuer", "update", "github", "--static-jwks-file", file);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(fake.calls.map((c) => c.method)).toEqual(["ListTrustedIssuers", "UpdateTrustedIssuer"]);
    expect(fake.calls[1]?.message).toEqual({ issuerId: ISSUER_ID, staticJwks: jwks });
    expect(rotated.stdout).toContain(`Updated trusted issuer github (id ${ISSUER_ID}).`);

    fake.calls.length = 0;
    const byUrl = await admin(
      "issuer",
      "update",
      ISSUER.issuerUrl,
      "--name",
      "gh",
      "--audience",
      "a",
      "--audience",
      "b",
      "--discovery",
      "-o",
      "json",
    );
    expect(byUrl.code, byUrl.stderr).toBe(0);
    expect(fake.calls[1]?.message).toEqual({
      issuerId: ISSUER_ID,
      name: "gh",
      audiences: { audiences: ["a", "b"] },
      discovery: true,
    });
    expect(JSON.parse(byUrl.stdout).issuer).toMatchObject({ id: ISSUER_ID, name: "gh" });

    fake.calls.length = 0;
    const byId = await admin("issuer", "update", ISSUER_ID, "--jwks-url", "https://k/jwks");
    expect(byId.code, byId.stderr).toBe(0);
    // An id needs no lookup.
    expect(fake.calls.map((c) => c.message)).toEqual([
      { issuerId: ISSUER_ID, jwksUrl: "https://k/jwks" },
    ]);
  });

  it("update refuses nothing to change, two key sources, and a file that is not a JWKS", async () => {
    const none = await admin("issuer", "update", "github");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("nothing to change");
    const two = await admin("issuer", "update", "github", "--discovery", "--jwks-url", "https://x");
    expect(two.code).toBe(2);
    expect(two.stderr).toContain("give --discovery or --jwks-url, not both");
    const file = path.join(dir, "not-jwks.json");
    await writeFile(file, "[]");
    const bad = await admin("issuer", "update", "github", "--static-jwks-file", file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`--static-jwks-file ${file} is not a JWKS document`);
    expect(fake.calls).toEqual([]);
  });
});

describe("coffer binding", () => {
  it("create sends conditions, grants as token create reads them, and the ttl", async () => {
    fake.on("ListTrustedIssuers", () => ({ issuers: [ISSUER], totalCount: "1" }));
    fake.on("CreateIdentityBinding", (m) => ({
      binding: { ...(m.binding as object), id: BINDING_ID },
    }));
    const r = await admin(
      "binding",
      "create",
      "--name",
      "deploy",
      "--issuer",
      "github",
      "--claim",
      "repository=acme/shop",
      "--claim",
      "/kubernetes.io/namespace=a=b",
      "--claim-glob",
      "ref=refs/tags/v*",
      "--grant",
      `read_only@${PROJECT_ID}:/deploy`,
      "--grant",
      `secret_access@${PROJECT_ID}`,
      "--ttl",
      "10m",
    );
    expect(r.code, r.stderr).toBe(0);
    expect(fake.calls.at(-1)?.message).toEqual({
      binding: {
        name: "deploy",
        issuerId: ISSUER_ID,
        conditions: [
          { claim: "repository", value: "acme/shop" },
          { claim: "/kubernetes.io/namespace", value: "a=b" },
          { claim: "ref", value: "refs/tags/v*", glob: true },
        ],
        grants: [
          { projectId: PROJECT_ID, role: "ROLE_READ_ONLY", pathPrefix: "/deploy" },
          { projectId: PROJECT_ID, role: "ROLE_SECRET_ACCESS", pathPrefix: "/" },
        ],
        tokenTtl: "600s",
      },
    });
    expect(r.stdout).toContain(`Created binding deploy (id ${BINDING_ID}).`);
    expect(r.stdout).toContain("ref=refs/tags/v* (glob)");
    expect(r.stdout).toMatch(/token ttl:\s+10m/);
  });

  it("create refuses what the server would, before calling it", async () => {
    const base = ["binding", "create", "--name", "n", "--issuer", ISSUER_ID];
    const grant = ["--grant", `read_only@${PROJECT_ID}`];
    const cases: [string[], string][] = [
      [[...base, ...grant], "a binding needs at least one --claim or --claim-glob"],
      [[...base, "--claim", "sub=x"], "a binding needs at least one --grant"],
      [[...base, ...grant, "--claim", "sub"], 'bad --claim "sub": write KEY=VALUE'],
      [[...base, ...grant, "--claim-glob", "=x"], 'bad --claim-glob "=x": write KEY=PATTERN'],
      [
        [...base, ...grant, "--claim", "sub=x", "--ttl", "30s"],
        '--ttl must be from 1m to 1h (got "30s")',
      ],
      [
        [...base, "--claim", "sub=x", "--grant", "owner"],
        'bad --grant "owner": the role must be one of',
      ],
      [
        ["binding", "create", "--name", "n", "--claim", "sub=x", ...grant],
        "a binding needs --issuer",
      ],
    ];
    for (const [argv, message] of cases) {
      const r = await admin(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toContain(message);
    }
    expect(fake.calls).toEqual([]);
  });

  it("list narrows by issuer and the current project; delete revokes", async () => {
    fake.on("ListIdentityBindings", () => ({
      bindings: [
        {
          id: BINDING_ID,
          name: "deploy",
          issuerId: ISSUER_ID,
          conditions: [{ claim: "sub", value: "repo:acme/*", glob: true }],
          grants: [{ projectId: PROJECT_ID, role: "ROLE_READ_ONLY", pathPrefix: "/deploy" }],
        },
      ],
      totalCount: "1",
    }));
    fake.on("DeleteIdentityBinding", () => ({
      binding: { id: BINDING_ID, name: "deploy" },
      revokedTokens: "1",
    }));
    const list = await coffer(
      { COFFER_TOKEN: "coffer_admin", COFFER_PROJECT: PROJECT_ID },
      "binding",
      "list",
      "--issuer",
      ISSUER_ID,
    );
    expect(list.code, list.stderr).toBe(0);
    expect(fake.calls[0]?.message).toEqual({
      issuerId: ISSUER_ID,
      projectId: PROJECT_ID,
      page: 1,
      pageSize: 50,
    });
    expect(list.stdout).toContain("sub=repo:acme/* (glob)");
    expect(list.stdout).toContain(`read_only@${PROJECT_ID}:/deploy`);
    expect(list.stdout).toMatch(/\b15m\b/);
    fake.calls.length = 0;
    await admin("binding", "list", "--all-projects");
    expect(fake.calls[0]?.message).toEqual({ page: 1, pageSize: 50 });
    const del = await admin("binding", "delete", BINDING_ID);
    expect(del.stdout).toBe(`Deleted binding deploy (id ${BINDING_ID}): 1 token(s) revoked.\n`);
    const bad = await admin("binding", "delete", "deploy");
    expect(bad.code).toBe(2);
  });
});

describe("coffer audit list, for exchanges", () => {
  it("shows the subject and the reason of refused exchanges, only when events have them", async () => {
    const event = {
      id: "e1",
      time: "2026-12-06T00:00:00Z",
      method: "coffer.auth.v1.AuthService/ExchangeToken",
      outcome: "UNAUTHENTICATED",
      count: 1,
      requestId: "r1",
      peer: "127.0.0.1",
    };
    fake.on("ListAuditEvents", () => ({
      events: [
        { ...event, subject: "repo:acme/shop:ref:refs/heads/main", reason: "no binding matches" },
      ],
      totalCount: "1",
    }));
    const r = await admin("audit", "list", "--method", "ExchangeToken");
    expect(r.code, r.stderr).toBe(0);
    expect(fake.calls[0]?.message).toMatchObject({
      method: "coffer.auth.v1.AuthService/ExchangeToken",
    });
    expect(r.stdout.split("\n")[0]).toMatch(/\bSUBJECT\s+REASON$/);
    expect(r.stdout).toMatch(/repo:acme\/shop:ref:refs\/heads\/main\s+no binding matches/);
    fake.on("ListAuditEvents", () => ({ events: [event], totalCount: "1" }));
    const plain = await admin("audit", "list");
    expect(plain.stdout.split("\n")[0]).not.toContain("REASON");
  });
});

describe("signing in with a JWT file", () => {
  let jwtFile = "";
  beforeAll(async () => {
    jwtFile = path.join(dir, "oidc-token");
    await writeFile(jwtFile, `${JWT}\n`);
  });
  const exchanged = () =>
    fake.on("ExchangeToken", () => ({
      value: "coffer_exchanged_value",
      token: {
        id: "t1",
        createdAt: new Date().toISOString(),
        expiresAt: new Date(Date.now() + 900_000).toISOString(),
      },
    }));

  it("exchanges COFFER_JWT_FILE when no token is set, and calls with the token it gets", async () => {
    exchanged();
    fake.on("ListTrustedIssuers", () => ({ issuers: [ISSUER], totalCount: "1" }));
    const r = await coffer({ COFFER_JWT_FILE: jwtFile }, "issuer", "list");
    expect(r.code, r.stderr).toBe(0);
    expect(fake.calls).toEqual([
      { method: "ExchangeToken", authorization: "", message: { jwt: JWT } },
      {
        method: "ListTrustedIssuers",
        authorization: "Bearer coffer_exchanged_value",
        message: { page: 1, pageSize: 50 },
      },
    ]);
  });

  it("takes COFFER_TOKEN over COFFER_JWT_FILE, and --jwt-file over both", async () => {
    exchanged();
    fake.on("ListTrustedIssuers", () => ({ issuers: [], totalCount: "0" }));
    await coffer({ COFFER_JWT_FILE: jwtFile, COFFER_TOKEN: "coffer_t" }, "issuer", "list");
    expect(fake.calls.map((c) => [c.method, c.authorization])).toEqual([
      ["ListTrustedIssuers", "Bearer coffer_t"],
    ]);
    fake.calls.length = 0;
    await coffer({ COFFER_TOKEN: "coffer_t" }, "issuer", "list", "--jwt-file", jwtFile);
    expect(fake.calls.map((c) => [c.method, c.authorization])).toEqual([
      ["ExchangeToken", ""],
      ["ListTrustedIssuers", "Bearer coffer_exchanged_value"],
    ]);
  });

  it("says what to check when the JWT is refused or the file is missing, never showing the JWT", async () => {
    fake.on(
      "ExchangeToken",
      () =>
        new ConnectError(
          "this JWT is not accepted; an admin finds the reason in the audit trail (method ExchangeToken)",
          Code.Unauthenticated,
        ),
    );
    const r = await coffer({ COFFER_JWT_FILE: jwtFile }, "issuer", "list");
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`exchanging the JWT file ${jwtFile} for a Coffer token`);
    expect(r.stderr).toContain("identity binding");
    expect(r.stderr).toContain("coffer audit list --method ExchangeToken");
    expect(r.stderr + r.stdout).not.toContain(JWT);
    expect(r.stderr + r.stdout).not.toContain("eyJ");

    const missing = path.join(dir, "nope");
    const m = await coffer({ COFFER_JWT_FILE: missing }, "issuer", "list");
    expect(m.code).toBe(4);
    expect(m.stderr).toContain(`cannot read the JWT file ${missing} (ENOENT)`);
  });
});
