import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestToken, PROJECT } from "../testing/backends.ts";
import { type Rest, restClient, rowsOf } from "../testing/rest.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

/**
 * Coffer's limits as the Scaleway REST API reports them, on a real server
 * with small limits: a project's quota of secrets and a secret's quota of
 * versions are 403 quotas_exceeded naming the quota and what it counts, and
 * the per-token rate limit is 429 too_many_requests saying when to retry.
 * Nothing is written past a quota.
 */

describe.each(serverBackends)("REST limits on $name", (backend) => {
  let running: TestServer;
  let rest: Rest;

  beforeAll(async () => {
    running = await backend.start({
      limits: { secretsPerProject: 3, versionsPerSecret: 2, requestsPerSecond: 0 },
    });
    const token = await createTestToken(running.server.domain, [
      { projectId: "", role: "admin", pathPrefix: "/" },
    ]);
    rest = restClient(running.server.httpPort, token.value);
  });
  afterAll(() => running?.stop());

  it("answers a secret's quota of versions with 403 quotas_exceeded naming the secret", async () => {
    const created = await rest("POST", "/secrets", {
      body: { project_id: PROJECT, name: "versions-quota" },
    });
    const id = created.json.id;
    const data = Buffer.from("v").toString("base64");
    for (let i = 0; i < 2; i++) {
      expect((await rest("POST", `/secrets/${id}/versions`, { body: { data } })).status).toBe(200);
    }
    const before = await rowsOf(running.server.domain);
    const res = await rest("POST", `/secrets/${id}/versions`, { body: { data } });
    expect(res.status, res.text).toBe(403);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.json).toEqual({
      type: "quotas_exceeded",
      message: "quota(s) exceeded",
      details: [{ resource: "secret_version", quota: 2, current: 2, secret_id: id }],
      help_message: expect.any(String),
    });
    expect(await rowsOf(running.server.domain)).toBe(before);
  });

  it("answers a project's quota of secrets with 403 quotas_exceeded naming the project", async () => {
    // One secret exists (the test above); two more fill the quota of three.
    for (const name of ["quota-2", "quota-3"]) {
      const res = await rest("POST", "/secrets", { body: { project_id: PROJECT, name } });
      expect(res.status, res.text).toBe(200);
    }
    const before = await rowsOf(running.server.domain);
    const res = await rest("POST", "/secrets", { body: { project_id: PROJECT, name: "quota-4" } });
    expect(res.status, res.text).toBe(403);
    expect(res.json).toEqual({
      type: "quotas_exceeded",
      message: "quota(s) exceeded",
      details: [{ resource: "secret", quota: 3, current: 3, project_id: PROJECT }],
      help_message: expect.any(String),
    });
    expect(await rowsOf(running.server.domain)).toBe(before);
  });
});

describe.each(serverBackends)("the REST rate limit on $name", (backend) => {
  let running: TestServer;
  let rest: Rest;

  beforeAll(async () => {
    running = await backend.start({
      limits: { secretsPerProject: 100, versionsPerSecret: 100, requestsPerSecond: 2 },
    });
    const token = await createTestToken(running.server.domain, [
      { projectId: "", role: "admin", pathPrefix: "/" },
    ]);
    rest = restClient(running.server.httpPort, token.value);
  });
  afterAll(() => running?.stop());

  it("answers past the rate with 429 too_many_requests and when to retry", async () => {
    // A burst is twice the rate: of eight calls at once, four are past it.
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        rest("GET", "/secret-types", { query: { project_id: PROJECT } }),
      ),
    );
    const limited = answers.find((a) => a.status === 429);
    expect(answers.map((a) => a.status)).toContain(200);
    expect(limited?.headers.get("content-type")).toBe("application/json");
    expect(limited?.json).toMatchObject({
      type: "too_many_requests",
      message: expect.any(String),
      limit: { quota: 2, window_seconds: 1 },
      reset_seconds: 1,
    });
    const resetAt = Date.parse(limited?.json.reset_at);
    expect(resetAt).toBeGreaterThan(Date.now() - 1_000);
    expect(resetAt).toBeLessThan(Date.now() + 5_000);
  });
});
