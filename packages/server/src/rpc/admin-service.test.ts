import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AdminService, Role, TokenFormat } from "@coffer/api";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { generateToken } from "../crypto/tokens.ts";
import type { RunningServer } from "../server.ts";
import { startTestServer } from "../testing/backends.ts";
import { type Protocol, testTransport } from "../testing/clients.ts";
import { type InMemoryServer, startInMemoryServer } from "../testing/in-memory-server.ts";

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

// In memory: what the service answers, in each protocol (the transports
// have tests of their own, over ports).
const bootstrap = generateToken().value;
let server: InMemoryServer;
beforeAll(async () => {
  server = await startInMemoryServer({ bootstrapToken: bootstrap });
});
afterAll(() => server?.stop());

const protocols: Protocol[] = ["grpc", "connect", "grpc-web"];

describe.each(protocols)("AdminService over %s", (protocol) => {
  const client = (token?: string): Client<typeof AdminService> =>
    server.adminClient(protocol, token);

  it("refuses a call without a valid token", async () => {
    expect((await codeOf(client().listProjects({}))).code).toBe(Code.Unauthenticated);
    expect((await codeOf(client(generateToken().value).listProjects({}))).code).toBe(
      Code.Unauthenticated,
    );
  });

  it("creates a project and a token whose value is shown once, and revokes it", async () => {
    const admin = client(bootstrap);
    const { project } = await admin.createProject({ name: `team ${protocol}` });
    expect(project?.id).toMatch(/^[0-9a-f-]{36}$/);
    const created = await admin.createToken({
      name: "prod reader",
      grants: [{ projectId: project?.id ?? "", role: Role.SECRET_ACCESS, pathPrefix: "/prod/" }],
      expiresAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
    });
    expect(created.value).toMatch(/^coffer_/);
    expect(created.token?.prefix).toBe(created.value.slice(0, 11));
    expect(created.token?.grants).toEqual([
      expect.objectContaining({
        projectId: project?.id,
        role: Role.SECRET_ACCESS,
        pathPrefix: "/prod",
      }),
    ]);

    const listed = await admin.listTokens({ projectId: project?.id ?? "" });
    expect(listed.tokens.map((t) => t.id)).toEqual([created.token?.id]);
    expect(listed.totalCount).toBe(1n);
    expect(
      JSON.stringify(listed, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    ).not.toContain(created.value.slice(7));

    // The new token authenticates (and, holding no admin role, is refused here).
    const reader = client(created.value);
    expect((await codeOf(reader.listProjects({}))).code).toBe(Code.PermissionDenied);

    const { token } = await admin.revokeToken({ tokenId: created.token?.id ?? "" });
    expect(token?.revokedAt).toBeDefined();
    // Forgotten at once, not when the authenticator's cache expires.
    expect((await codeOf(reader.listProjects({}))).code).toBe(Code.Unauthenticated);
    const again = await codeOf(admin.revokeToken({ tokenId: created.token?.id ?? "" }));
    expect(again.code).toBe(Code.FailedPrecondition);
    expect(again.message).toContain("already revoked");
  });

  it("creates a Scaleway-style key whose secret key is a token like any other", async () => {
    const admin = client(bootstrap);
    const { project } = await admin.createProject({ name: `scaleway ${protocol}` });
    const projectId = project?.id ?? "";
    const created = await admin.createToken({
      name: "scw sdk",
      grants: [{ projectId, role: Role.FULL_ACCESS, pathPrefix: "/prod" }],
      format: TokenFormat.SCALEWAY,
    });
    expect(created.accessKey).toMatch(/^SCW[A-Z0-9]{17}$/);
    expect(created.value).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(created.token).toMatchObject({
      prefix: created.accessKey,
      accessKey: created.accessKey,
    });

    // Listed by its access key id, never with its secret key.
    const listed = await admin.listTokens({ projectId });
    expect(listed.tokens.map((t) => [t.id, t.accessKey])).toEqual([
      [created.token?.id, created.accessKey],
    ]);
    expect(
      JSON.stringify(listed, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    ).not.toContain(created.value.slice(0, 8));

    // Its grant works, typed in either case, and holds to its path.
    for (const [i, value] of [created.value, created.value.toUpperCase()].entries()) {
      const scw = server.client(protocol, value);
      const { secret } = await scw.createSecret({ projectId, name: `db-${i}`, path: "/prod" });
      expect(secret?.path).toBe("/prod");
      const outside = await codeOf(scw.createSecret({ projectId, name: "x", path: "/dev" }));
      expect(outside.code).toBe(Code.PermissionDenied);
    }

    // Audited as any creation, then revoked as any token.
    const events = await admin.listAuditEvents({
      projectId,
      method: "coffer.admin.v1.AdminService/CreateToken",
    });
    expect(events.events.map((e) => e.targetTokenId)).toEqual([created.token?.id]);
    await admin.revokeToken({ tokenId: created.token?.id ?? "" });
    const revoked = await codeOf(server.client(protocol, created.value).listSecrets({ projectId }));
    expect(revoked.code).toBe(Code.Unauthenticated);

    // A Coffer token (the default) has no access key.
    const plain = await admin.createToken({
      name: "plain",
      grants: [{ projectId, role: Role.READ_ONLY }],
    });
    expect(plain.accessKey).toBe("");
    expect(plain.token?.accessKey).toBe("");
    expect(plain.value).toMatch(/^coffer_/);
  });

  it("answers bad requests with INVALID_ARGUMENT naming the field", async () => {
    const admin = client(bootstrap);
    const { project } = await admin.createProject({ name: `validation ${protocol}` });
    const bad = await codeOf(
      admin.createToken({
        name: "x",
        grants: [{ projectId: project?.id ?? "", role: 42 as Role }],
      }),
    );
    expect(bad).toEqual({ code: Code.InvalidArgument, message: "grants[0].role: unknown role 42" });
    const unspecified = await codeOf(
      admin.createToken({ name: "x", grants: [{ projectId: project?.id ?? "" }] }),
    );
    expect(unspecified.code).toBe(Code.InvalidArgument);
    expect(unspecified.message).toMatch(/^grants\[0\]\.role: is required/);
    const past = await codeOf(
      admin.createToken({
        name: "x",
        grants: [{ projectId: project?.id ?? "", role: Role.READ_ONLY }],
        expiresAt: timestampFromDate(new Date(Date.now() - 1000)),
      }),
    );
    expect(past.message).toMatch(/^expires_at: /);
  });

  it("lets a project admin grant only on its project, and audits every call", async () => {
    const admin = client(bootstrap);
    const { project } = await admin.createProject({ name: `delegated ${protocol}` });
    const projectId = project?.id ?? "";
    const delegate = await admin.createToken({
      name: "project admin",
      grants: [{ projectId, role: Role.ADMIN }],
    });
    const projectAdmin = client(delegate.value);
    expect((await projectAdmin.listProjects({})).projects.map((p) => p.id)).toEqual([projectId]);
    const global = await codeOf(
      projectAdmin.createToken({ name: "escalate", grants: [{ role: Role.ADMIN }] }),
    );
    expect(global.code).toBe(Code.PermissionDenied);
    expect((await codeOf(projectAdmin.createProject({ name: "mine" }))).code).toBe(
      Code.PermissionDenied,
    );
    await projectAdmin.createToken({
      name: "ci",
      grants: [{ projectId, role: Role.SECRET_WRITE, pathPrefix: "/ci" }],
    });
    expect((await codeOf(projectAdmin.listAuditEvents({}))).code).toBe(Code.PermissionDenied);

    const events = await projectAdmin.listAuditEvents({
      projectId,
      tokenId: delegate.token?.id ?? "",
    });
    // Newest first: the denied global listing is filed under no project, so it is not here.
    expect(events.events.map((e) => [e.method.split("/")[1], e.outcome])).toEqual([
      ["CreateToken", "OK"],
    ]);
    const all = await admin.listAuditEvents({ tokenId: delegate.token?.id ?? "" });
    // Every call, once. (Not in call order: calls a millisecond apart may
    // share their time, and events of one time are listed by id.)
    const byCall = (x: string[], y: string[]) => x.join().localeCompare(y.join());
    expect(all.events.map((e) => [e.method.split("/")[1] ?? "", e.outcome]).sort(byCall)).toEqual(
      [
        ["ListAuditEvents", "OK"],
        ["ListAuditEvents", "PERMISSION_DENIED"],
        ["CreateToken", "OK"],
        ["CreateProject", "PERMISSION_DENIED"],
        ["CreateToken", "PERMISSION_DENIED"],
        ["ListProjects", "OK"],
      ].sort(byCall),
    );
    expect(all.events.every((e) => e.region === "local" && e.requestId !== "")).toBe(true);
  });

  it("describes the calling token, with the projects its grants name, to any valid token", async () => {
    const admin = client(bootstrap);
    const a = (await admin.createProject({ name: `caller a ${protocol}` })).project;
    const b = (await admin.createProject({ name: `caller b ${protocol}` })).project;
    const expiresAt = timestampFromDate(new Date(Date.now() + 3_600_000));
    const make = async (
      name: string,
      grants: { projectId: string; role: Role; pathPrefix: string }[],
    ) => admin.createToken({ name, grants, expiresAt });
    const reader = await make("reader", [
      { projectId: a?.id ?? "", role: Role.READ_ONLY, pathPrefix: "/" },
      { projectId: b?.id ?? "", role: Role.READ_ONLY, pathPrefix: "/team" },
    ]);
    const accessor = await make("sidecar", [
      { projectId: b?.id ?? "", role: Role.SECRET_ACCESS, pathPrefix: "/prod" },
    ]);
    const projectAdmin = await make("project admin", [
      { projectId: a?.id ?? "", role: Role.ADMIN, pathPrefix: "/" },
    ]);

    for (const [made, projects] of [
      [reader, [a, b]],
      [accessor, [b]],
      [projectAdmin, [a]],
    ] as const) {
      const got = await client(made.value).getCaller({});
      expect(got.token).toEqual(made.token);
      expect(got.projects.map((p) => [p.id, p.name])).toEqual(
        projects.map((p) => [p?.id, p?.name]),
      );
      expect(JSON.stringify(got, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(
        made.value.slice(11),
      );
    }

    // The global admin: one grant on no project, and no project listed (ListProjects lists them all).
    const global = await admin.getCaller({});
    expect(global.token?.name).toBe("bootstrap admin");
    expect(global.token?.grants).toEqual([
      expect.objectContaining({ projectId: "", role: Role.ADMIN, pathPrefix: "/" }),
    ]);
    expect(global.projects).toEqual([]);

    // Audited like every call, under the asking token.
    const asked = await admin.listAuditEvents({
      tokenId: reader.token?.id ?? "",
      method: "coffer.admin.v1.AdminService/GetCaller",
    });
    expect(asked.events.map((e) => e.outcome)).toEqual(["OK"]);

    await admin.revokeToken({ tokenId: reader.token?.id ?? "" });
    expect((await codeOf(client(reader.value).getCaller({}))).code).toBe(Code.Unauthenticated);
    expect((await codeOf(client().getCaller({}))).code).toBe(Code.Unauthenticated);
  });

  it("rotates the master key for a global admin only", async () => {
    const admin = client(bootstrap);
    const r = await admin.rotateMasterKey({});
    expect(r.activeKeyId).not.toBe("");
    const { project } = await admin.createProject({ name: `rotation ${protocol}` });
    const delegate = await admin.createToken({
      name: "project admin",
      grants: [{ projectId: project?.id ?? "", role: Role.ADMIN }],
    });
    expect((await codeOf(client(delegate.value).rotateMasterKey({}))).code).toBe(
      Code.PermissionDenied,
    );
  });
});

describe("the bootstrap admin token", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "coffer-bootstrap-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Starts a server on the same data folder each time, runs `use` against it,
   * stops it; returns what the server wrote to stderr while starting.
   */
  async function start(use: (running: RunningServer) => Promise<void> = async () => {}) {
    const spy = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    let running: RunningServer;
    let printed: string;
    try {
      running = await startTestServer({
        databases: { local: { driver: "pglite", dataDir: path.join(dir, "local") } },
        bootstrapToken: undefined,
      });
    } finally {
      printed = spy.mock.calls.map((c) => String(c[0])).join("");
      spy.mockRestore();
    }
    try {
      await use(running);
    } finally {
      await running.stop();
    }
    return printed;
  }

  // Two starts of an on-disk PGlite: slow on a busy machine.
  it("is printed on the first start only, and works", { timeout: 120_000 }, async () => {
    const first = await start();
    const match =
      /Coffer created an admin token\. It is shown this once; store it now:\n {2}(coffer_\w+)\n/.exec(
        first,
      );
    expect(match?.[1]).toBeDefined();
    const second = await start(async (running) => {
      const admin = createClient(
        AdminService,
        testTransport({
          url: `http://127.0.0.1:${running.httpPort}`,
          token: match?.[1] ?? "",
        }),
      );
      const { tokens } = await admin.listTokens({});
      expect(tokens.map((t) => t.name)).toEqual(["bootstrap admin"]);
    });
    expect(second).not.toContain("coffer_");
  });
});
