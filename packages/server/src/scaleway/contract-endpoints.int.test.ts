import http2 from "node:http2";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestToken, PROJECT } from "../testing/backends.ts";
import { REST_PREFIX, type Rest, type RestAnswer, restClient } from "../testing/rest.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";
import { ADD_OWNER, ROUTES } from "./routes.ts";

/**
 * The contract of the Scaleway Secret Manager v1beta1 REST API
 * (`../shared/reference/scaleway-secret-manager-v1beta1.md`), endpoint by
 * endpoint, over raw HTTP to a real server on a real port: the exact status,
 * `Content-Type: application/json` exactly (the JS SDK compares it whole),
 * every documented field present with explicit nulls, times with
 * microseconds, durations as "1800s", DELETE as a bare 204, and the query
 * strings Scaleway's clients and Terraform send. The tests of a backend run
 * in order: each step works on what the steps before it made.
 */

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

const SECRET_FIELDS = [
  "created_at",
  "deletion_requested_at",
  "description",
  "ephemeral_policy",
  "id",
  "key_id",
  "managed",
  "name",
  "path",
  "project_id",
  "protected",
  "region",
  "status",
  "tags",
  "type",
  "updated_at",
  "used_by",
  "version_count",
];
const VERSION_FIELDS = [
  "created_at",
  "deleted_at",
  "deletion_requested_at",
  "description",
  "ephemeral_properties",
  "latest",
  "region",
  "revision",
  "secret_id",
  "status",
  "updated_at",
];
const PAYLOAD_FIELDS = ["data", "data_crc32", "revision", "secret_id", "type"];

/** A 200 with exactly `application/json`, whose body is an object with exactly `fields`. */
function expectJson(res: RestAnswer, fields?: string[], status = 200) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/json");
  expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(res.text)));
  expect(res.headers.get("x-request-id")).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
  if (fields !== undefined) expect(Object.keys(res.json).sort()).toEqual(fields);
}

function expectSecret(s: Record<string, unknown>) {
  expect(Object.keys(s).sort()).toEqual(SECRET_FIELDS);
  expect(s.created_at).toMatch(TIME);
  expect(s.updated_at).toMatch(TIME);
  expect(s).toMatchObject({ managed: false, used_by: [], key_id: null, region: "local" });
}

function expectVersion(v: Record<string, unknown>) {
  expect(Object.keys(v).sort()).toEqual(VERSION_FIELDS);
  expect(v.created_at).toMatch(TIME);
  expect(v.updated_at).toMatch(TIME);
  expect(v.region).toBe("local");
}

/** A DELETE's answer: 204, no body, no content type. */
function expectNoContent(res: RestAnswer) {
  expect({ status: res.status, text: res.text }).toEqual({ status: 204, text: "" });
  expect(res.headers.get("content-type")).toBeNull();
}

const b64 = (text: string) => Buffer.from(text).toString("base64");

/** One REST call over cleartext HTTP/2 (prior knowledge), as a Go client may make it. */
function overHttp2(
  port: number,
  method: string,
  path: string,
  token: string,
  body?: string,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": method,
      ":path": `${REST_PREFIX}/local${path}`,
      "x-auth-token": token,
      ...(body !== undefined && { "content-type": "application/json" }),
    });
    let headers: http2.IncomingHttpHeaders = {};
    let text = "";
    stream.on("response", (h) => {
      headers = h;
    });
    stream.on("data", (chunk) => {
      text += chunk;
    });
    stream.on("end", () => {
      session.close();
      resolve({ status: Number(headers[":status"]), headers, body: text });
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

describe.each(serverBackends)("the REST contract on $name", (backend) => {
  let running: TestServer;
  let rest: Rest;
  let token: string;
  /** Every method and path answered 2xx, to check that every route was exercised. */
  const answered: string[] = [];
  let secretId = "";
  let ephemeralId = "";
  const name = `contract-${Date.now()}`;

  beforeAll(async () => {
    running = await backend.start();
    token = (
      await createTestToken(running.server.domain, [
        { projectId: "", role: "admin", pathPrefix: "/" },
      ])
    ).value;
    const raw = restClient(running.server.httpPort, token);
    rest = async (method, path, call) => {
      const res = await raw(method, path, call);
      if (res.status < 300) answered.push(`${method} ${path.split("?")[0]}`);
      return res;
    };
  });
  afterAll(() => running?.stop());

  it("1 CreateSecret: 200 and the secret with every field", async () => {
    const res = await rest("POST", "/secrets", {
      body: {
        project_id: PROJECT,
        name,
        path: "/contract",
        tags: ["a", "b"],
        description: "made over REST",
        type: "key_value",
        protected: false,
        key_id: null,
        ephemeral_policy: null,
      },
    });
    expectJson(res);
    expectSecret(res.json);
    expect(res.json).toMatchObject({
      project_id: PROJECT,
      name,
      path: "/contract",
      tags: ["a", "b"],
      description: "made over REST",
      type: "key_value",
      status: "ready",
      protected: false,
      version_count: 0,
      ephemeral_policy: null,
      deletion_requested_at: null,
    });
    secretId = res.json.id;
    expect(res.text).toContain('"ephemeral_policy":null');
  });

  it("1 CreateSecret: an ephemeral policy in the Go SDK's duration comes back as 1800s", async () => {
    const res = await rest("POST", "/secrets", {
      body: {
        project_id: PROJECT,
        name: `${name}-eph`,
        path: "/contract/eph",
        ephemeral_policy: {
          time_to_live: "1800.000000000s",
          expires_once_accessed: false,
          action: "disable",
        },
      },
    });
    expectJson(res);
    expectSecret(res.json);
    expect(res.json.type).toBe("opaque");
    expect(res.json.ephemeral_policy).toEqual({
      time_to_live: "1800s",
      expires_once_accessed: false,
      action: "disable",
    });
    ephemeralId = res.json.id;
  });

  it("2 GetSecret: 200 and the same secret", async () => {
    const res = await rest("GET", `/secrets/${secretId}`);
    expectJson(res);
    expectSecret(res.json);
    expect(res.json).toMatchObject({ id: secretId, name, tags: ["a", "b"] });
  });

  it("3 UpdateSecret: changes only the fields sent", async () => {
    const res = await rest("PATCH", `/secrets/${secretId}`, {
      body: { description: "changed", tags: ["b", "c"] },
    });
    expectJson(res);
    expectSecret(res.json);
    expect(res.json).toMatchObject({ name, path: "/contract", description: "changed" });
    expect([...res.json.tags].sort()).toEqual(["b", "c"]);
    // The cassette secret-ephemeral-policy: a policy is modifiable after creation.
    const eph = await rest("PATCH", `/secrets/${ephemeralId}`, {
      body: { ephemeral_policy: { time_to_live: "18000s", action: "delete" } },
    });
    expectJson(eph);
    expect(eph.json.ephemeral_policy).toEqual({
      time_to_live: "18000s",
      expires_once_accessed: false,
      action: "delete",
    });
  });

  it("11 CreateSecretVersion: 200, revision 1 enabled and latest, with a verified data_crc32", async () => {
    const data = '{"user":"app"}';
    const res = await rest("POST", `/secrets/${secretId}/versions`, {
      body: {
        data: b64(data),
        data_crc32: crc32(data),
        description: "first",
        disable_previous: false,
      },
    });
    expectJson(res);
    expectVersion(res.json);
    expect(res.json).toMatchObject({
      revision: 1,
      secret_id: secretId,
      status: "enabled",
      latest: true,
      description: "first",
      deleted_at: null,
      ephemeral_properties: null,
      deletion_requested_at: null,
    });
    expect(res.text).toContain('"deleted_at":null');
  });

  it("11 CreateSecretVersion: disable_previous disables revision 1", async () => {
    const res = await rest("POST", `/secrets/${secretId}/versions`, {
      body: { data: b64('{"user":"app2"}'), disable_previous: true },
    });
    expectJson(res);
    expect(res.json).toMatchObject({ revision: 2, status: "enabled", latest: true });
    const first = await rest("GET", `/secrets/${secretId}/versions/1`);
    expect(first.json).toMatchObject({ revision: 1, status: "disabled", latest: false });
  });

  it("11 CreateSecretVersion: a version of an ephemeral secret carries its expiry", async () => {
    const res = await rest("POST", `/secrets/${ephemeralId}/versions`, {
      body: { data: b64("short-lived") },
    });
    expectJson(res);
    expectVersion(res.json);
    expect(res.json.ephemeral_properties).toEqual({
      expires_at: expect.stringMatching(TIME),
      expires_once_accessed: false,
      action: "delete",
    });
    const ttl = Date.parse(res.json.ephemeral_properties.expires_at) - Date.now();
    expect(ttl).toBeGreaterThan(17_000_000);
    expect(ttl).toBeLessThanOrEqual(18_000_000);
  });

  it("12 ListSecretVersions: every version, page 1 by default, status filters as repeated keys", async () => {
    const all = await rest("GET", `/secrets/${secretId}/versions`);
    expectJson(all, ["total_count", "versions"]);
    expect(all.json.total_count).toBe(2);
    for (const v of all.json.versions) expectVersion(v);
    expect(all.json.versions.map((v: { revision: number }) => v.revision).sort()).toEqual([1, 2]);
    const both = await rest("GET", `/secrets/${secretId}/versions`, {
      query: { status: ["enabled", "disabled"] },
    });
    expect(both.json.total_count).toBe(2);
    const disabled = await rest("GET", `/secrets/${secretId}/versions`, {
      query: { status: "disabled" },
    });
    expect(disabled.json.versions.map((v: { revision: number }) => v.revision)).toEqual([1]);
    expect(disabled.json.total_count).toBe(1);
    const page2 = await rest("GET", `/secrets/${secretId}/versions`, {
      query: { page: "2", page_size: "1" },
    });
    expect(page2.json.versions).toHaveLength(1);
    expect(page2.json.total_count).toBe(2);
  });

  it("13 GetSecretVersion: by number, latest and latest_enabled", async () => {
    for (const [revision, want] of [
      ["1", 1],
      ["latest", 2],
      ["latest_enabled", 2],
    ] as const) {
      const res = await rest("GET", `/secrets/${secretId}/versions/${revision}`);
      expectJson(res);
      expectVersion(res.json);
      expect(res.json.revision).toBe(want);
    }
  });

  it("14 UpdateSecretVersion: a description, and an ephemeral version's expiry", async () => {
    const res = await rest("PATCH", `/secrets/${secretId}/versions/2`, {
      body: { description: "second" },
    });
    expectJson(res);
    expectVersion(res.json);
    expect(res.json).toMatchObject({
      revision: 2,
      description: "second",
      ephemeral_properties: null,
    });
    // Sooner than the policy gave it (properties are tightened, never weakened), with microseconds.
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString().replace("Z", "853Z");
    const eph = await rest("PATCH", `/secrets/${ephemeralId}/versions/1`, {
      body: { ephemeral_properties: { expires_at: expiresAt, action: "delete" } },
    });
    expectJson(eph);
    expectVersion(eph.json);
    expect(eph.json.ephemeral_properties).toEqual({
      expires_at: expect.stringMatching(TIME),
      expires_once_accessed: false,
      action: "delete",
    });
    // Coffer keeps times to the millisecond: the microseconds sent are rounded.
    const kept = Date.parse(eph.json.ephemeral_properties.expires_at);
    expect(Math.abs(kept - Date.parse(expiresAt))).toBeLessThanOrEqual(1);
  });

  it("16 AccessSecretVersion: base64 data, its CRC-32 and the type", async () => {
    const res = await rest("GET", `/secrets/${secretId}/versions/latest_enabled/access`);
    expectJson(res, PAYLOAD_FIELDS);
    const data = '{"user":"app2"}';
    expect(res.json).toEqual({
      secret_id: secretId,
      revision: 2,
      data: b64(data),
      data_crc32: crc32(data),
      type: "key_value",
    });
  });

  it("17 AccessSecretVersionByPath: the same by project, path and name", async () => {
    const res = await rest("GET", "/secrets-by-path/versions/2/access", {
      query: { project_id: PROJECT, secret_path: "/contract", secret_name: name },
    });
    expectJson(res, PAYLOAD_FIELDS);
    expect(res.json).toMatchObject({
      secret_id: secretId,
      revision: 2,
      data: b64('{"user":"app2"}'),
    });
  });

  it("18-19 Enable/DisableSecretVersion: accept {} and an empty body", async () => {
    const enabled = await rest("POST", `/secrets/${secretId}/versions/1/enable`, { body: {} });
    expectJson(enabled);
    expectVersion(enabled.json);
    expect(enabled.json).toMatchObject({ revision: 1, status: "enabled" });
    const disabled = await rest("POST", `/secrets/${secretId}/versions/1/disable`);
    expectJson(disabled);
    expect(disabled.json).toMatchObject({ revision: 1, status: "disabled" });
    const again = await rest("POST", `/secrets/${secretId}/versions/1/enable`, { body: "" });
    expect(again.json).toMatchObject({ revision: 1, status: "enabled" });
  });

  it("15 DeleteSecretVersion: 204 with no body and no content type", async () => {
    expectNoContent(await rest("DELETE", `/secrets/${secretId}/versions/1`));
    const gone = await rest("GET", `/secrets/${secretId}/versions/1`);
    expect(gone.json.status).toBe("scheduled_for_deletion");
    expect(gone.json.deletion_requested_at).toMatch(TIME);
  });

  it("20 RestoreSecretVersion: {} brings it back", async () => {
    const res = await rest("POST", `/secrets/${secretId}/versions/1/restore`, { body: {} });
    expectJson(res);
    expectVersion(res.json);
    expect(res.json.revision).toBe(1);
    expect(res.json.status).not.toBe("scheduled_for_deletion");
    expect(res.json.deletion_requested_at).toBeNull();
  });

  it("7-8 Protect/UnprotectSecret: {} toggles protection; a protected secret is not deleted (412)", async () => {
    const on = await rest("POST", `/secrets/${secretId}/protect`, { body: {} });
    expectJson(on);
    expectSecret(on.json);
    expect(on.json.protected).toBe(true);
    const refused = await rest("DELETE", `/secrets/${secretId}`);
    expectJson(refused, undefined, 412);
    expect(refused.json).toEqual({
      type: "precondition_failed",
      message: "precondition is not respected",
      precondition: "protected_resource",
      help_message: expect.any(String),
    });
    const off = await rest("POST", `/secrets/${secretId}/unprotect`, { body: {} });
    expectJson(off);
    expect(off.json.protected).toBe(false);
  });

  it("9 AddSecretOwner: a valid request is refused naming product (Coffer has no products)", async () => {
    const res = await rest("POST", `/secrets/${secretId}/add-owner`, {
      body: { product: "edge_services" },
    });
    expectJson(res, undefined, 400);
    expect(res.json).toEqual({
      type: "invalid_arguments",
      message: "invalid argument(s)",
      details: [
        { argument_name: "product", reason: "constraint", help_message: expect.any(String) },
      ],
    });
    const missing = await rest("POST", `/secrets/${crypto.randomUUID()}/add-owner`, {
      body: { product: "s2s_vpn" },
    });
    expect(missing.status).toBe(404);
    expect(missing.json.type).toBe("not_found");
  });

  it("5 ListSecrets: page 1 by default, total_count, tags as repeated keys, Terraform's filters", async () => {
    const res = await rest("GET", "/secrets", { query: { project_id: PROJECT } });
    expectJson(res, ["secrets", "total_count"]);
    for (const s of res.json.secrets) expectSecret(s);
    expect(res.json.total_count).toBeGreaterThanOrEqual(2);
    // What terraform-provider-scaleway sends on every list (cassette list-secrets-by-tags).
    const terraform = await rest("GET", "/secrets", {
      query: {
        project_id: PROJECT,
        tags: ["b", "c"],
        type: "unknown_type",
        scheduled_for_deletion: "false",
        order_by: "name_asc",
        page: "1",
      },
    });
    expectJson(terraform, ["secrets", "total_count"]);
    expect(terraform.json.secrets.map((s: { id: string }) => s.id)).toEqual([secretId]);
    expect(terraform.json.total_count).toBe(1);
    const byType = await rest("GET", "/secrets", {
      query: { project_id: PROJECT, type: "key_value", name },
    });
    expect(byType.json.total_count).toBe(1);
    const paged = await rest("GET", "/secrets", {
      query: { organization_id: PROJECT, page: "2", page_size: "1", order_by: "created_at_asc" },
    });
    expect(paged.json.secrets).toHaveLength(1);
    expect(paged.json.total_count).toBe(res.json.total_count);
    // The JS SDK's `.all()` sends no page first: that is page 1.
    const ids = async (query: Record<string, string>) =>
      (
        await rest("GET", "/secrets", {
          query: { project_id: PROJECT, page_size: "1", order_by: "name_asc", ...query },
        })
      ).json.secrets.map((s: { id: string }) => s.id);
    expect(await ids({})).toEqual(await ids({ page: "1" }));
    expect(await ids({})).not.toEqual(await ids({ page: "2" }));
    // A page far past the end is empty, with the count still there.
    const far = await rest("GET", "/secrets", {
      query: { project_id: PROJECT, page: "1000000", page_size: "1000" },
    });
    expectJson(far, ["secrets", "total_count"]);
    expect(far.json).toEqual({ secrets: [], total_count: res.json.total_count });
  });

  it("6 BrowseSecrets: folders and secrets under a prefix, / by default", async () => {
    const root = await rest("GET", "/secrets/browse", { query: { project_id: PROJECT } });
    expectJson(root, ["current_path", "items", "total_count"]);
    expect(root.json.current_path).toBe("/");
    const folder = root.json.items.find((i: { name: string }) => i.name === "contract");
    expect(folder).toEqual({
      name: "contract",
      created_at: null,
      updated_at: null,
      secret: null,
      folder: {},
    });
    const inside = await rest("GET", "/secrets/browse", {
      query: { project_id: PROJECT, prefix: "/contract", order_by: "name_asc" },
    });
    expectJson(inside, ["current_path", "items", "total_count"]);
    const item = inside.json.items.find((i: { name: string }) => i.name === name);
    expect(Object.keys(item).sort()).toEqual([
      "created_at",
      "folder",
      "name",
      "secret",
      "updated_at",
    ]);
    expect(item.created_at).toMatch(TIME);
    expect(item.folder).toBeNull();
    expect(item.secret).toEqual({
      id: secretId,
      tags: expect.any(Array),
      version_count: 2,
      protected: false,
      ephemeral_policy: null,
      type: "key_value",
    });
    expect(inside.json.items.map((i: { name: string }) => i.name)).toEqual(
      expect.arrayContaining(["eph", name]),
    );
  });

  it("21 ListTags: {tags, total_count}", async () => {
    const res = await rest("GET", "/tags", { query: { project_id: PROJECT } });
    expectJson(res, ["tags", "total_count"]);
    expect(res.json.tags).toEqual(expect.arrayContaining(["b", "c"]));
    expect(res.json.total_count).toBe(res.json.tags.length);
  });

  it("22 ListSecretTypes: {types, total_count} by Scaleway's names", async () => {
    const res = await rest("GET", "/secret-types", { query: { project_id: PROJECT } });
    expectJson(res, ["total_count", "types"]);
    expect(res.json.types).toEqual(expect.arrayContaining(["key_value", "opaque"]));
    expect(res.json.total_count).toBe(res.json.types.length);
  });

  it("4 DeleteSecret: 204; listed only with scheduled_for_deletion=true", async () => {
    expectNoContent(await rest("DELETE", `/secrets/${secretId}`));
    const hidden = await rest("GET", "/secrets", { query: { project_id: PROJECT, name } });
    expect(hidden.json).toEqual({ secrets: [], total_count: 0 });
    const scheduled = await rest("GET", "/secrets", {
      query: { project_id: PROJECT, name, scheduled_for_deletion: "true" },
    });
    expect(scheduled.json.total_count).toBe(1);
    expect(scheduled.json.secrets[0].deletion_requested_at).toMatch(TIME);
  });

  it("10 RestoreSecret: {} brings it back", async () => {
    const res = await rest("POST", `/secrets/${secretId}/restore`, { body: {} });
    expectJson(res);
    expectSecret(res.json);
    expect(res.json).toMatchObject({ id: secretId, deletion_requested_at: null });
  });

  it("answers alike over cleartext HTTP/2", async () => {
    const get = await overHttp2(running.server.httpPort, "GET", `/secrets/${secretId}`, token);
    expect(get.status).toBe(200);
    expect(get.headers["content-type"]).toBe("application/json");
    expectSecret(JSON.parse(get.body));
    const created = await overHttp2(
      running.server.httpPort,
      "POST",
      `/secrets/${secretId}/versions`,
      token,
      JSON.stringify({ data: b64('{"over":"h2"}') }),
    );
    expect(created.status, created.body).toBe(200);
    const { revision } = JSON.parse(created.body);
    const deleted = await overHttp2(
      running.server.httpPort,
      "DELETE",
      `/secrets/${secretId}/versions/${revision}`,
      token,
    );
    expect({ status: deleted.status, body: deleted.body }).toEqual({ status: 204, body: "" });
    expect(deleted.headers["content-type"]).toBeUndefined();
    const tooLarge = await overHttp2(
      running.server.httpPort,
      "POST",
      `/secrets/${secretId}/versions`,
      token,
      JSON.stringify({ data: "A".repeat(600 * 1024) }),
    );
    expect(tooLarge.status).toBe(413);
    expect(JSON.parse(tooLarge.body).type).toBe("invalid_request_error");
  });

  it("exercised every route of the API", () => {
    const routes = [...ROUTES, ADD_OWNER];
    const hit = (route: (typeof routes)[number]) =>
      answered.some((call) => {
        const [method, path = ""] = call.split(" ");
        const segments = path.split("/").slice(1);
        return (
          method === route.method &&
          segments.length === route.path.length &&
          route.path.every((p, i) => p.startsWith(":") || p === segments[i])
        );
      });
    // AddSecretOwner is never answered 2xx: its refusal was checked above.
    const missed = routes.filter((r) => r !== ADD_OWNER && !hit(r));
    expect(missed.map((r) => `${r.method} ${r.path.join("/")}`)).toEqual([]);
    expect(routes).toHaveLength(22);
  });
});
