import { randomUUID } from "node:crypto";
import { SecretService } from "@coffer/api";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../db/schema.ts";
import { createTestToken, PROJECT } from "../testing/backends.ts";
import { type Rest, type RestCall, restClient } from "../testing/rest.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

/**
 * A REST call is a SecretService call like any other: it goes through the
 * call chain, so it leaves exactly one audit event, under the method name
 * gRPC and Connect record (`coffer.secretmanager.v1.SecretService/GetSecret`),
 * and it carries a request id: the client's `x-request-id` when it is sane,
 * else a new one, echoed in the answer and recorded in the event.
 */

const method = (name: string) => `${SecretService.typeName}/${name}`;

describe.each(serverBackends)("REST calls in the audit trail on $name", (backend) => {
  let running: TestServer;
  let rest: Rest;
  let token: string;

  /** The audit events of a request id, once written (the trail is written after the answer). */
  async function eventsOf(requestId: string, atLeast = 1) {
    const db = running.server.domain.regions.resolve("").db;
    let events: (typeof auditEvents.$inferSelect)[] = [];
    for (let i = 0; i < 50; i++) {
      events = await db.select().from(auditEvents).where(eq(auditEvents.requestId, requestId));
      if (events.length >= atLeast) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return events;
  }

  /** A call with its own request id; the id comes back in the answer. */
  async function call(verb: string, path: string, options: RestCall = {}) {
    const requestId = `rest-${randomUUID()}`;
    const res = await rest(verb, path, {
      ...options,
      headers: { ...options.headers, "x-request-id": requestId },
    });
    expect(res.headers.get("x-request-id")).toBe(requestId);
    return { res, requestId };
  }

  beforeAll(async () => {
    running = await backend.start();
    token = (
      await createTestToken(running.server.domain, [
        { projectId: "", role: "admin", pathPrefix: "/" },
      ])
    ).value;
    rest = restClient(running.server.httpPort, token);
  });
  afterAll(() => running?.stop());

  it("writes one event per call of every route, named as over gRPC", async () => {
    const name = `audited-${Date.now()}`;
    const created = await call("POST", "/secrets", {
      body: { project_id: PROJECT, name, path: "/audit" },
    });
    const id = created.res.json.id;
    const data = Buffer.from("audited payload").toString("base64");
    const steps: [string, string, RestCall, string][] = [
      ["GET", `/secrets/${id}`, {}, "GetSecret"],
      ["PATCH", `/secrets/${id}`, { body: { description: "d" } }, "UpdateSecret"],
      ["POST", `/secrets/${id}/versions`, { body: { data } }, "CreateSecretVersion"],
      ["GET", `/secrets/${id}/versions`, {}, "ListSecretVersions"],
      ["GET", `/secrets/${id}/versions/1`, {}, "GetSecretVersion"],
      ["PATCH", `/secrets/${id}/versions/1`, { body: { description: "v" } }, "UpdateSecretVersion"],
      ["GET", `/secrets/${id}/versions/1/access`, {}, "AccessSecretVersion"],
      [
        "GET",
        "/secrets-by-path/versions/1/access",
        { query: { project_id: PROJECT, secret_path: "/audit", secret_name: name } },
        "AccessSecretVersionByPath",
      ],
      ["POST", `/secrets/${id}/versions/1/disable`, { body: {} }, "DisableSecretVersion"],
      ["POST", `/secrets/${id}/versions/1/enable`, { body: {} }, "EnableSecretVersion"],
      ["DELETE", `/secrets/${id}/versions/1`, {}, "DeleteSecretVersion"],
      ["POST", `/secrets/${id}/versions/1/restore`, { body: {} }, "RestoreSecretVersion"],
      ["POST", `/secrets/${id}/protect`, { body: {} }, "ProtectSecret"],
      ["POST", `/secrets/${id}/unprotect`, { body: {} }, "UnprotectSecret"],
      // Authorized and audited as the read it is; the product is refused after.
      ["POST", `/secrets/${id}/add-owner`, { body: { product: "s2s_vpn" } }, "GetSecret"],
      ["GET", "/secrets", { query: { project_id: PROJECT } }, "ListSecrets"],
      ["GET", "/secrets/browse", { query: { project_id: PROJECT } }, "BrowseSecrets"],
      ["GET", "/tags", { query: { project_id: PROJECT } }, "ListTags"],
      ["GET", "/secret-types", { query: { project_id: PROJECT } }, "ListSecretTypes"],
      ["DELETE", `/secrets/${id}`, {}, "DeleteSecret"],
      ["POST", `/secrets/${id}/restore`, { body: {} }, "RestoreSecret"],
    ];
    const ids = [[created.requestId, "CreateSecret"]];
    for (const [verb, path, options, rpc] of steps) {
      const { res, requestId } = await call(verb, path, options);
      // add-owner is refused (400) after the read it is audited as.
      const want = path.endsWith("/add-owner") ? [400] : verb === "DELETE" ? [204] : [200];
      expect(want, `${verb} ${path}: ${res.text}`).toContain(res.status);
      ids.push([requestId, rpc]);
    }
    for (const [requestId = "", rpc = ""] of ids) {
      const events = await eventsOf(requestId);
      expect(
        events.map((e) => [e.method, e.outcome]),
        rpc,
      ).toEqual([[method(rpc), "OK"]]);
    }
    expect(new Set(ids.map(([, rpc]) => rpc)).size).toBe(21);
  });

  it("names the method exactly as a gRPC call of it does", async () => {
    const created = await rest("POST", "/secrets", {
      body: { project_id: PROJECT, name: `both-${Date.now()}` },
    });
    const overRest = await call("GET", `/secrets/${created.json.id}`);
    const grpcId = `grpc-${randomUUID()}`;
    await running
      .client("grpc", token)
      .getSecret({ secretId: created.json.id }, { headers: { "x-request-id": grpcId } });
    const [fromRest] = await eventsOf(overRest.requestId);
    const [fromGrpc] = await eventsOf(grpcId);
    expect(fromRest?.method).toBe(fromGrpc?.method);
    expect({ ...fromRest, id: "", time: null, requestId: "", peer: "" }).toEqual({
      ...fromGrpc,
      id: "",
      time: null,
      requestId: "",
      peer: "",
    });
  });

  it("writes one event for a refused call, with its outcome", async () => {
    const reader = (
      await createTestToken(running.server.domain, [
        { projectId: PROJECT, role: "read_only", pathPrefix: "/" },
      ])
    ).value;
    const created = await rest("POST", "/secrets", {
      body: { project_id: PROJECT, name: `refused-${Date.now()}` },
    });
    const denied = await call("DELETE", `/secrets/${created.json.id}`, { token: reader });
    expect(denied.res.status).toBe(403);
    const missing = await call("GET", `/secrets/${randomUUID()}`);
    expect(missing.res.status).toBe(404);
    expect((await eventsOf(denied.requestId)).map((e) => [e.method, e.outcome])).toEqual([
      [method("DeleteSecret"), "PERMISSION_DENIED"],
    ]);
    expect((await eventsOf(missing.requestId)).map((e) => [e.method, e.outcome])).toEqual([
      [method("GetSecret"), "NOT_FOUND"],
    ]);
  });

  it("replaces an insane request id with its own, in the answer and the event", async () => {
    for (const insane of ["has spaces", "x".repeat(65), "semi;colon", ""]) {
      const res = await rest("GET", "/secret-types", {
        query: { project_id: PROJECT },
        headers: { "x-request-id": insane },
      });
      const given = res.headers.get("x-request-id") ?? "";
      expect(given).not.toBe(insane);
      expect(given).toMatch(/^[0-9a-f-]{36}$/);
      expect((await eventsOf(given)).map((e) => e.method)).toEqual([method("ListSecretTypes")]);
    }
  });

  it("never takes the caller's own token as its request id, over REST or gRPC", async () => {
    const res = await rest("GET", "/secret-types", {
      query: { project_id: PROJECT },
      headers: { "x-request-id": token },
    });
    expect(res.status).toBe(200);
    const given = res.headers.get("x-request-id") ?? "";
    expect(given).toMatch(/^[0-9a-f-]{36}$/);
    expect((await eventsOf(given)).map((e) => e.method)).toEqual([method("ListSecretTypes")]);
    const echoed = { id: "" };
    await running.client("grpc", token).listSecretTypes(
      { projectId: PROJECT },
      {
        headers: { "x-request-id": token },
        onHeader: (h) => {
          echoed.id = h.get("x-request-id") ?? "";
        },
      },
    );
    expect(echoed.id).toMatch(/^[0-9a-f-]{36}$/);
    // Both calls' events are written (found under the ids the server made); none under the token.
    expect((await eventsOf(echoed.id)).map((e) => e.method)).toEqual([method("ListSecretTypes")]);
    expect(await eventsOf(token, 0)).toEqual([]);
  });

  it("carries a request id on every answer, refusals and bare 204s included", async () => {
    const created = await rest("POST", "/secrets", {
      body: { project_id: PROJECT, name: `ids-${Date.now()}` },
    });
    for (const [verb, path, options] of [
      ["DELETE", `/secrets/${created.json.id}`, {}],
      ["GET", "/no-such-endpoint", {}],
      ["PUT", "/secrets", {}],
      ["POST", "/secrets", { body: "{" }],
      ["GET", "/secrets", { token: null }],
    ] as [string, string, RestCall][]) {
      const { res } = await call(verb, path, options);
      expect(res.status, `${verb} ${path}`).not.toBe(200);
    }
  });
});
