import { randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../domain/caller.ts";
import {
  createAt,
  expected,
  GRANTED,
  isUnder,
  LIST_TAG,
  matrixTokens,
  P,
  PAYLOAD,
  PERMISSIONS,
  PLACES,
  Q,
  ROLES,
  RPCS,
  type Rpc,
  SCOPES,
  type Scope,
  type SecretRpc,
  seedMatrix,
  shape,
  TAG,
  type Target,
  TOKEN_CASES,
} from "../testing/authorization-matrix.ts";
import { createTestToken } from "../testing/backends.ts";
import type { SecretClient } from "../testing/clients.ts";
import { type RestAnswer, type RestCall, restClient } from "../testing/rest.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

/**
 * The authorization matrix (testing/authorization-matrix.ts, the cases the
 * gRPC matrix runs) over the Scaleway REST API, on a real port: every role,
 * on a secret in every place relative to its grant, calling every endpoint,
 * gets the outcome gRPC gives, in Scaleway's words: 403 permissions_denied
 * for PERMISSION_DENIED, 404 not_found for NOT_FOUND (reading exactly like a
 * missing secret's), 401 denied_authentication for UNAUTHENTICATED. A
 * refused change changes nothing; a payload and its checksum reach only the
 * roles that may access it. Half the roles send their token as Scaleway's
 * `X-Auth-Token`, half as `Authorization: Bearer`; every invalid token is
 * tried in both.
 */

interface RestRequest {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  body?: unknown;
  query?: Record<string, string | readonly string[]>;
}

const PAYLOAD_B64 = Buffer.from(PAYLOAD).toString("base64");
const at = (t: Target, suffix = "") => `/secrets/${t.id}${suffix}`;

/** Each secret-addressed RPC of the matrix as its REST request. */
const SECRET_REQUESTS: Record<string, (t: Target) => RestRequest> = {
  GetSecret: (t) => ({ method: "GET", path: at(t) }),
  UpdateSecret: (t) => ({ method: "PATCH", path: at(t), body: { description: "changed" } }),
  DeleteSecret: (t) => ({ method: "DELETE", path: at(t) }),
  RestoreSecret: (t) => ({ method: "POST", path: at(t, "/restore"), body: {} }),
  ProtectSecret: (t) => ({ method: "POST", path: at(t, "/protect"), body: {} }),
  UnprotectSecret: (t) => ({ method: "POST", path: at(t, "/unprotect"), body: {} }),
  CreateSecretVersion: (t) => ({
    method: "POST",
    path: at(t, "/versions"),
    body: { data: PAYLOAD_B64 },
  }),
  GetSecretVersion: (t) => ({ method: "GET", path: at(t, "/versions/1") }),
  UpdateSecretVersion: (t) => ({
    method: "PATCH",
    path: at(t, "/versions/1"),
    body: { description: "changed" },
  }),
  ListSecretVersions: (t) => ({ method: "GET", path: at(t, "/versions") }),
  AccessSecretVersion: (t) => ({ method: "GET", path: at(t, "/versions/1/access") }),
  AccessSecretVersionByPath: (t) => ({
    method: "GET",
    path: "/secrets-by-path/versions/latest_enabled/access",
    query: { project_id: t.projectId, secret_path: t.path, secret_name: t.name },
  }),
  EnableSecretVersion: (t) => ({ method: "POST", path: at(t, "/versions/1/enable"), body: {} }),
  DisableSecretVersion: (t) => ({ method: "POST", path: at(t, "/versions/1/disable"), body: {} }),
  DeleteSecretVersion: (t) => ({ method: "DELETE", path: at(t, "/versions/1") }),
  RestoreSecretVersion: (t) => ({ method: "POST", path: at(t, "/versions/1/restore"), body: {} }),
};

/** Each project-wide read as its REST request; "" lists every project. */
const PROJECT_REQUESTS: Record<string, (projectId: string) => RestRequest> = {
  ListSecrets: (projectId) => ({
    method: "GET",
    path: "/secrets",
    query: projectId === "" ? {} : ({ project_id: projectId } as Record<string, string>),
  }),
  BrowseSecrets: (projectId) => ({
    method: "GET",
    path: "/secrets/browse",
    query: { project_id: projectId, prefix: "/" },
  }),
  ListTags: (projectId) => ({ method: "GET", path: "/tags", query: { project_id: projectId } }),
  ListSecretTypes: (projectId) => ({
    method: "GET",
    path: "/secret-types",
    query: { project_id: projectId },
  }),
};

const createRequest = (place: { projectId: string; path: string }, name: string): RestRequest => ({
  method: "POST",
  path: "/secrets",
  body: { project_id: place.projectId, path: place.path, name, type: "key_value" },
});

/**
 * AddSecretOwner has no SecretService method: it is authorized as a read of
 * the secret, then refused naming `product` (400) where a read would be OK.
 */
const ADD_OWNER: SecretRpc = {
  kind: "secret",
  name: "AddSecretOwner",
  perm: "read",
  call: () => Promise.reject(new Error("REST only")),
};
const addOwner = (t: Target): RestRequest => ({
  method: "POST",
  path: at(t, "/add-owner"),
  body: { product: "edge_services" },
});

/** The RPCs of the matrix no REST endpoint serves. */
const NOT_SERVED = ["DestroySecretVersion"];

/** The REST request of an RPC on a target, by its kind. */
function requestOf(rpc: Rpc, t: Target): RestRequest {
  if (rpc === ADD_OWNER) return addOwner(t);
  const build = SECRET_REQUESTS[rpc.name];
  if (build === undefined) throw new Error(`${rpc.name} has no REST request`);
  return build(t);
}

function projectRequestOf(rpc: Rpc, projectId: string): RestRequest {
  const build = PROJECT_REQUESTS[rpc.name];
  if (build === undefined) throw new Error(`${rpc.name} has no REST request`);
  return build(projectId);
}

/** The gRPC code name a REST answer stands for; anything unexpected shows whole. */
function outcomeOf(res: RestAnswer): string {
  if (res.status === 200 || res.status === 204) return "OK";
  const codes: Record<number, [string, string]> = {
    401: ["denied_authentication", "UNAUTHENTICATED"],
    403: ["permissions_denied", "PERMISSION_DENIED"],
    404: ["not_found", "NOT_FOUND"],
  };
  const [type, code] = codes[res.status] ?? [];
  if (code !== undefined && res.json?.type === type) {
    expect(res.headers.get("content-type")).toBe("application/json");
    return code;
  }
  return `${res.status} ${res.text}`;
}

/** A refusal's body with the identifiers of what it is about blanked, to compare shapes. */
function shapeOf(res: RestAnswer, t: { id?: string; projectId?: string; name?: string }): string {
  return JSON.stringify(res.json, (_k, v) => {
    if (typeof v !== "string") return v;
    let s = shape(v, t);
    // A secret addressed by path is named `<path>/<name>` in resource_id.
    if (t.name) s = s.replace(new RegExp(`/${t.name}$`), "/<name>");
    return s;
  });
}

/** Every key of a JSON value that carries a payload or its checksum. */
function payloadKeysIn(value: unknown, path = "body"): string[] {
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === "data" || k === "data_crc32" ? [`${path}.${k}`] : payloadKeysIn(v, `${path}.${k}`),
  );
}

type Header = "x-auth-token" | "bearer";

/** Which header each role sends its token in: authorization must not depend on it. */
const HEADER: Record<Role, Header> = {
  admin: "x-auth-token",
  full_access: "bearer",
  secret_write: "x-auth-token",
  read_only: "bearer",
  secret_access: "x-auth-token",
};

/** Each caller without a valid token, in either header ("no token" sends none). */
const INVALID = TOKEN_CASES.flatMap((who) =>
  (who === "no token" ? (["x-auth-token"] as const) : (["x-auth-token", "bearer"] as const)).map(
    (header) => ({ who, header, key: `${who} as ${header}` }),
  ),
);

type Caller = (req: RestRequest) => Promise<RestAnswer>;

describe.each(serverBackends)("the authorization matrix over REST on $name", (backend) => {
  let running: TestServer;
  let admin: SecretClient;
  const callers = {} as Record<Role, Caller>;
  const invalid = {} as Record<string, Caller>;
  let fixtures: Record<Scope, Target>;
  let tokenTarget: Target;
  let n = 0;
  const unique = (prefix: string) => `${prefix}-${++n}`;
  const etagOf = async (t: Target) => (await admin.getSecret({ secretId: t.id })).secret?.etag;

  /** A caller sending `token` in `header`, or no token at all. */
  const callerOf = (token: string | undefined, header: Header): Caller => {
    const rest = restClient(running.server.httpPort, undefined);
    return ({ method, path, body, query }) => {
      const call: RestCall = {
        ...(body !== undefined && { body }),
        ...(query !== undefined && { query }),
        ...(token !== undefined && {
          headers:
            header === "bearer" ? { authorization: `Bearer ${token}` } : { "x-auth-token": token },
        }),
      };
      return rest(method, path, call);
    };
  };

  beforeAll(async () => {
    running = await backend.start();
    const tokens = await matrixTokens(running.server.domain);
    admin = running.client("connect", tokens.admin);
    for (const role of ROLES) callers[role] = callerOf(tokens.roles[role], HEADER[role]);
    for (const { who, header, key } of INVALID) {
      invalid[key] = callerOf(tokens.invalid[who], header);
    }
    ({ fixtures, tokenTarget } = await seedMatrix(admin));
  }, 180_000);
  afterAll(() => running?.stop());

  it("maps every RPC of the matrix to its endpoint, but those REST does not serve", () => {
    const mapped = [...Object.keys(SECRET_REQUESTS), ...Object.keys(PROJECT_REQUESTS)];
    const names = RPCS.filter((r) => r.kind !== "create").map((r) => r.name);
    expect(names.filter((name) => !mapped.includes(name)).sort()).toEqual(NOT_SERVED);
    expect(mapped.filter((name) => !names.includes(name))).toEqual([]);
  });

  /** What an allowed project-wide read must show, and hide, for a scope. */
  async function checkProjectRead(rpc: Rpc, role: Role, scope: Scope | "all projects") {
    const c = callers[role];
    const get = async (path: string, query: Record<string, string | readonly string[]>) => {
      const res = await c({ method: "GET", path, query });
      expect(res.status, res.text).toBe(200);
      return res.json;
    };
    const listed = (r: { secrets: { path: string; name: string }[] }) =>
      r.secrets.map((s) => `${s.path}:${s.name}`).sort();
    const outside = scope === "in scope" || scope === "all projects" ? undefined : scope;
    switch (rpc.name) {
      case "ListSecrets": {
        if (outside === undefined) {
          const project: Record<string, string> = scope === "in scope" ? { project_id: P } : {};
          const tagged = await get("/secrets", { ...project, tags: LIST_TAG });
          const want = PERMISSIONS[role].includes("read")
            ? ["/prod/app:listed", "/prod:listed"]
            : [];
          expect(listed(tagged)).toEqual(want);
          expect(tagged.total_count).toBe(want.length);
          const all = await get("/secrets", { ...project, page_size: "1000" });
          for (const s of all.secrets) {
            expect({ project: s.project_id, under: isUnder(s.path, GRANTED) }).toEqual({
              project: P,
              under: true,
            });
          }
          return;
        }
        const queries: Record<string, string>[] = [
          { project_id: P, path: PLACES[outside].path, page_size: "1000" },
          { project_id: P, tags: TAG[outside] },
          { project_id: P, path: "/" },
        ];
        for (const query of queries) {
          const r = await get("/secrets", query);
          expect(listed(r)).toEqual([]);
          expect(r.total_count).toBe(0);
        }
        return;
      }
      case "BrowseSecrets": {
        const items = (r: { items: { name: string; folder: unknown }[] }) =>
          r.items.map((i) => `${i.folder === null ? "secret" : "folder"}:${i.name}`);
        if (outside === undefined) {
          // The root shows the granted folder and nothing else.
          const root = await get("/secrets/browse", { project_id: P, prefix: "/" });
          expect(items(root)).toEqual(["folder:prod"]);
          expect(root.total_count).toBe(1);
          const prod = await get("/secrets/browse", { project_id: P, prefix: "/prod" });
          expect(items(prod)).toEqual(
            expect.arrayContaining(["folder:app", "secret:db", "secret:listed"]),
          );
          return;
        }
        const r = await get("/secrets/browse", { project_id: P, prefix: PLACES[outside].path });
        expect(items(r)).toEqual([]);
        expect(r.total_count).toBe(0);
        return;
      }
      case "ListTags": {
        const r = await get("/tags", { project_id: P, page_size: "1000" });
        expect([...r.tags].sort()).toEqual([LIST_TAG, TAG["in scope"]].sort());
        expect(r.total_count).toBe(2);
        return;
      }
      case "ListSecretTypes": {
        const r = await get("/secret-types", { project_id: P });
        expect([...r.types].sort()).toEqual(["key_value", "opaque"]);
        return;
      }
      default:
        throw new Error(`no check of ${rpc.name}'s answer`);
    }
  }

  const served = [...RPCS.filter((r) => !NOT_SERVED.includes(r.name)), ADD_OWNER];

  describe.each(served)("$name", (rpc) => {
    const cases = ROLES.flatMap((role) =>
      [...SCOPES, ...(rpc.name === "ListSecrets" ? (["all projects"] as const) : [])].map(
        (scope) => ({ role, scope, want: expected(rpc, role, scope) }),
      ),
    );

    it.concurrent.each(cases)("$role, $scope -> $want", async ({ role, scope, want }) => {
      const c = callers[role];
      if (rpc.kind === "create") {
        const place = PLACES[scope as Scope];
        // A refused create aims at a name that exists: refusal must come
        // before, and say nothing of, the name being taken.
        const name = want === "OK" ? unique("created") : "db";
        const got = await c(createRequest(place, name));
        expect(outcomeOf(got)).toBe(want);
        expect((await admin.listSecrets({ ...place, name })).totalCount).toBe(1n);
        if (want === "NOT_FOUND") {
          const other = randomUUID();
          const missing = await c(createRequest({ projectId: other, path: place.path }, name));
          expect(outcomeOf(missing)).toBe("NOT_FOUND");
          expect(shapeOf(got, { projectId: place.projectId })).toBe(
            shapeOf(missing, { projectId: other }),
          );
        }
        return;
      }

      if (rpc.kind === "project") {
        const projectId = scope === "out of project" ? Q : scope === "all projects" ? "" : P;
        const got = await c(projectRequestOf(rpc, projectId));
        expect(outcomeOf(got)).toBe(want);
        if (want === "OK") {
          expect(payloadKeysIn(got.json)).toEqual([]);
          await checkProjectRead(rpc, role, scope);
        }
        if (want === "NOT_FOUND") {
          const other = randomUUID();
          const missing = await c(projectRequestOf(rpc, other));
          expect(outcomeOf(missing)).toBe("NOT_FOUND");
          expect(shapeOf(got, { projectId })).toBe(shapeOf(missing, { projectId: other }));
        }
        return;
      }

      const place = PLACES[scope as Scope];
      const target = rpc.mutates
        ? await createAt(admin, place, unique("t"), { protected: rpc.mutates.protected ?? false })
        : fixtures[scope as Scope];
      let before = target.etag;
      if (rpc.mutates?.prepare) {
        await rpc.mutates.prepare(admin, target);
        before = await etagOf(target);
      }

      const got = await c(requestOf(rpc, target));
      if (rpc === ADD_OWNER && want === "OK") {
        // Allowed to read the secret: refused for the product, with nothing changed.
        expect(got.status, got.text).toBe(400);
        expect(got.json.details[0].argument_name).toBe("product");
        expect(await etagOf(target)).toBe(before);
        return;
      }
      expect(outcomeOf(got)).toBe(want);

      if (rpc.mutates) {
        const after = await etagOf(target);
        if (want === "OK") expect(after).not.toBe(before);
        else expect(after).toBe(before);
      }
      if (want === "OK") {
        if (rpc.perm === "access") {
          // The payload and its checksum, and only in the access answer's own fields.
          expect(payloadKeysIn(got.json)).toEqual(["body.data", "body.data_crc32"]);
          expect(got.json.data).toBe(PAYLOAD_B64);
          expect(got.json.data_crc32).toBe(crc32(PAYLOAD));
        } else {
          expect(payloadKeysIn(got.json)).toEqual([]);
        }
      }
      if (want === "NOT_FOUND") {
        // No existence leak: the hidden secret's answer reads exactly like a missing one's.
        const missing = { ...target, id: randomUUID(), name: unique("missing") };
        const absent = await c(requestOf(rpc, missing));
        expect(outcomeOf(absent)).toBe("NOT_FOUND");
        expect(shapeOf(got, target)).toBe(shapeOf(absent, missing));
        expect(got.text).not.toMatch(/permission|grant|role|token/i);
      }
    });

    it.concurrent.each(INVALID)("$key -> UNAUTHENTICATED", async ({ who, key }) => {
      const c = invalid[key] as Caller;
      const before = await etagOf(tokenTarget);
      let got: RestAnswer;
      if (rpc.kind === "create") {
        const name = unique("unauthenticated");
        got = await c(createRequest(PLACES["in scope"], name));
        expect((await admin.listSecrets({ projectId: P, name })).totalCount).toBe(0n);
      } else if (rpc.kind === "project") {
        got = await c(projectRequestOf(rpc, P));
      } else {
        got = await c(requestOf(rpc, rpc.mutates ? tokenTarget : fixtures["in scope"]));
      }
      expect(outcomeOf(got)).toBe("UNAUTHENTICATED");
      expect(got.json).toMatchObject({
        type: "denied_authentication",
        method: "api_key",
        reason: who === "no token" ? "invalid_argument" : "not_found",
      });
      // One message for every way of not holding a valid token.
      const anonymous = await (invalid["no token as x-auth-token"] as Caller)({
        method: "GET",
        path: at(tokenTarget),
      });
      expect(got.json.message).toBe(anonymous.json.message);
      expect(await etagOf(tokenTarget)).toBe(before);
    });
  });

  it("takes a token as X-Auth-Token or as Authorization: Bearer, alike", async () => {
    const token = (
      await createTestToken(running.server.domain, [
        { projectId: P, role: "full_access", pathPrefix: GRANTED },
      ])
    ).value;
    const target = fixtures["in scope"];
    const request: RestRequest = { method: "GET", path: at(target, "/versions/1/access") };
    const viaScaleway = await callerOf(token, "x-auth-token")(request);
    const viaBearer = await callerOf(token, "bearer")(request);
    expect([viaScaleway.status, viaBearer.status]).toEqual([200, 200]);
    expect(viaBearer.json).toEqual(viaScaleway.json);
    // `Bearer` is spelt exactly, as over gRPC and Connect; anything else is no token.
    const lower = await restClient(running.server.httpPort, undefined)("GET", at(target), {
      headers: { authorization: `bearer ${token}` },
    });
    expect(lower.status).toBe(401);
  });
});
