import { randomUUID } from "node:crypto";
import { AdminService, AuthService, SecretService } from "@coffer/api";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../db/schema.ts";
import type { RunningServer } from "../server.ts";
import { createTestToken, PROJECT, startTestServer } from "../testing/backends.ts";
import { secretClient } from "../testing/clients.ts";

/**
 * The reads are marked `idempotency_level = NO_SIDE_EFFECTS` in the proto,
 * so connect-node also serves them over HTTP GET (Connect protocol, the
 * request in the query string). A GET is an ordinary call: the bearer token
 * is still required, the call is audited, and no response that may carry
 * secret metadata is kept by a browser or a proxy cache.
 */

let server: RunningServer;
let token: string;
let secretId: string;
beforeAll(async () => {
  server = await startTestServer();
  token = (
    await createTestToken(server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
  ).value;
  const client = secretClient({ url: `http://127.0.0.1:${server.httpPort}`, token });
  const { secret } = await client.createSecret({
    projectId: PROJECT,
    name: "over-get",
    path: "/http-get",
    firstVersion: { data: new TextEncoder().encode("s3cret-payload") },
  });
  secretId = secret?.id ?? "";
});
afterAll(() => server?.stop());

/** A Connect GET of `procedure` with `message` (JSON), as curl would send it. */
function get(
  procedure: string,
  message: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const query = new URLSearchParams({
    connect: "v1",
    encoding: "json",
    message: JSON.stringify(message),
  });
  return fetch(`http://127.0.0.1:${server.httpPort}/${procedure}?${query}`, { headers });
}

const GET_SECRET = `${SecretService.typeName}/GetSecret`;

describe("reads over HTTP GET", () => {
  it("answers a GET with a token, audits it, and forbids caching", async () => {
    const requestId = randomUUID();
    const res = await get(
      GET_SECRET,
      { secretId },
      { authorization: `Bearer ${token}`, "x-request-id": requestId },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as { secret?: { id?: string; name?: string } };
    expect(body.secret).toMatchObject({ id: secretId, name: "over-get" });
    // The call left its audit event, like a POST.
    const db = server.domain.regions.resolve("").db;
    let events: { method: string; outcome: string }[] = [];
    for (let i = 0; i < 50 && events.length === 0; i++) {
      events = await db.select().from(auditEvents).where(eq(auditEvents.requestId, requestId));
      if (events.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(events.map((e) => [e.method, e.outcome])).toEqual([[GET_SECRET, "OK"]]);
  });

  it("refuses a GET without a token, or with a token in the query string", async () => {
    const none = await get(GET_SECRET, { secretId });
    expect(none.status).toBe(401);
    expect(((await none.json()) as { code?: string }).code).toBe("unauthenticated");
    expect(none.headers.get("cache-control")).toBe("no-store");
    // Only the Authorization header carries a token; a query parameter is not read.
    const query = new URLSearchParams({
      connect: "v1",
      encoding: "json",
      message: JSON.stringify({ secretId }),
      authorization: `Bearer ${token}`,
    });
    const inQuery = await fetch(`http://127.0.0.1:${server.httpPort}/${GET_SECRET}?${query}`);
    expect(inQuery.status).toBe(401);
    await inQuery.body?.cancel();
  });

  it("answers INVALID_ARGUMENT to a GET whose message does not decode", async () => {
    const query = new URLSearchParams({
      connect: "v1",
      encoding: "proto",
      base64: "1",
      message: Buffer.from([0xff, 0xff, 0xff]).toString("base64url"),
    });
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/${GET_SECRET}?${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(((await res.json()) as { code?: string }).code).toBe("invalid_argument");
    expect(res.status).toBe(400);
  });

  it("serves exactly the methods marked NO_SIDE_EFFECTS over GET, never an access or a write", async () => {
    const overGet: string[] = [];
    for (const service of [SecretService, AdminService, AuthService]) {
      for (const method of service.methods.filter((m) => m.methodKind === "unary")) {
        const res = await get(
          `${service.typeName}/${method.name}`,
          {},
          {
            authorization: `Bearer ${token}`,
          },
        );
        await res.body?.cancel();
        if (res.status !== 405) overGet.push(method.name);
      }
    }
    expect(overGet.sort()).toEqual(
      [
        "BrowseSecrets",
        "GetSecret",
        "GetCaller",
        "GetSecretVersion",
        "ListAuditEvents",
        "ListProjects",
        "ListRegions",
        "ListSecretTypes",
        "ListSecretVersions",
        "ListSecrets",
        "ListTags",
        "ListTokens",
        "ListTrustedIssuers",
        "ListIdentityBindings",
      ].sort(),
    );
  });

  it("forbids caching of POST answers too", async () => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/${GET_SECRET}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ secretId }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    await res.body?.cancel();
  });
});
