import http from "node:http";
import net from "node:net";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestToken, PROJECT } from "../testing/backends.ts";
import { REST_PREFIX, type Rest, type RestAnswer, restClient, rowsOf } from "../testing/rest.ts";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

/**
 * What the Scaleway REST API refuses, over raw HTTP to a real server: bodies
 * and query strings a client got wrong, a payload whose checksum does not
 * match, requests too large, paths and methods that are no endpoint. Each
 * is a clear 4xx with `Content-Type: application/json` and a body in the
 * reference's error shape (`type`, `message`, and what is at fault), never a
 * 5xx, and a refused write leaves every secret and version row as it was.
 */

const b64 = (text: string) => Buffer.from(text).toString("base64");

/** A refusal in the reference's error shape; for invalid_arguments, naming `argument`. */
function expectRefusal(
  res: RestAnswer,
  status: number,
  type: string,
  argument?: string,
): Record<string, unknown> {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/json");
  expect(res.json).toMatchObject({ type, message: expect.any(String) });
  expect(res.json.message).not.toBe("");
  if (argument !== undefined) {
    expect(res.json.details).toEqual([
      { argument_name: argument, reason: expect.any(String), help_message: expect.any(String) },
    ]);
  }
  return res.json;
}

/** A raw HTTP/1.1 exchange on a fresh connection: everything the server wrote back. */
function exchange(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    socket.end(request);
    socket.setTimeout(10_000, () => socket.destroy(new Error("no answer in 10 s")));
  });
}

describe.each(serverBackends)("REST refusals on $name", (backend) => {
  let running: TestServer;
  let rest: Rest;
  let token: string;
  let secretId = "";
  const name = `refusals-${Date.now()}`;
  const rows = () => rowsOf(running.server.domain);

  /** Sends a write that must be refused, and checks that no row changed. */
  async function refusedWrite(method: string, path: string, call: Parameters<Rest>[2] = {}) {
    const before = await rows();
    const res = await rest(method, path, call);
    expect(res.status, res.text).toBeGreaterThanOrEqual(400);
    expect(res.status, res.text).toBeLessThan(500);
    expect(await rows()).toBe(before);
    return res;
  }

  beforeAll(async () => {
    running = await backend.start();
    token = (
      await createTestToken(running.server.domain, [
        { projectId: "", role: "admin", pathPrefix: "/" },
      ])
    ).value;
    rest = restClient(running.server.httpPort, token);
    const created = await rest("POST", "/secrets", {
      body: { project_id: PROJECT, name, path: "/refusals", type: "key_value" },
    });
    secretId = created.json.id;
    await rest("POST", `/secrets/${secretId}/versions`, { body: { data: b64('{"a":"1"}') } });
  });
  afterAll(() => running?.stop());

  const secretBody = (extra: Record<string, unknown>) => ({
    project_id: PROJECT,
    name: `${name}-new`,
    path: "/refusals",
    ...extra,
  });

  describe("bodies", () => {
    it.each([
      ["malformed JSON", "{", "body"],
      ["JSON that is not an object", "[]", "body"],
      ["trailing garbage", '{"name":"x"}x', "body"],
    ])("refuses %s naming the body", async (_why, body, argument) => {
      const res = await refusedWrite("POST", "/secrets", { body });
      expectRefusal(res, 400, "invalid_arguments", argument);
    });

    it.each([
      ["a name that is a number", { name: 1 }, "name"],
      ["tags that are a string", { tags: "a,b" }, "tags"],
      ["protected as a string", { protected: "yes" }, "protected"],
      ["a policy that is a string", { ephemeral_policy: "1800s" }, "ephemeral_policy"],
      [
        "a duration without its unit",
        { ephemeral_policy: { time_to_live: "1800" } },
        "ephemeral_policy.time_to_live",
      ],
      [
        "an action Scaleway does not have",
        { ephemeral_policy: { time_to_live: "1800s", action: "explode" } },
        "ephemeral_policy.action",
      ],
      ["a type Scaleway does not have", { type: "password" }, "type"],
      ["a type in upper case", { type: "OPAQUE" }, "type"],
      ["a customer key", { key_id: "8a3f0e52-54c4-4b2f-9d0e-ffd1f5b6a001" }, "key_id"],
    ])("refuses %s naming the field", async (_why, extra, argument) => {
      const res = await refusedWrite("POST", "/secrets", { body: secretBody(extra) });
      expectRefusal(res, 400, "invalid_arguments", argument);
    });

    it.each([
      ["a misspelt field", { protect: true }, "protect"],
      ["a nested misspelt field", { ephemeral_policy: { ttl: "1800s" } }, "ephemeral_policy.ttl"],
      ["an SDK field Coffer does not take", { secret_id: "x" }, "secret_id"],
    ])("refuses %s by its name, never ignoring it", async (_why, extra, argument) => {
      const res = await refusedWrite("POST", "/secrets", { body: secretBody(extra) });
      const body = expectRefusal(res, 400, "invalid_arguments", argument);
      expect(JSON.stringify(body)).toContain("is not a field of this request");
    });

    it("refuses an unknown or mistyped field of an update, changing nothing", async () => {
      const path = `/secrets/${secretId}`;
      expectRefusal(
        await refusedWrite("PATCH", path, { body: { description: "x", descripton: "y" } }),
        400,
        "invalid_arguments",
        "descripton",
      );
      expectRefusal(
        await refusedWrite("PATCH", path, { body: { tags: [1, 2] } }),
        400,
        "invalid_arguments",
        "tags",
      );
      expectRefusal(
        await refusedWrite("PATCH", `${path}/versions/1`, {
          body: { ephemeral_properties: { expires_at: "tomorrow" } },
        }),
        400,
        "invalid_arguments",
        "ephemeral_properties.expires_at",
      );
    });

    it.each([
      ["protect", `/protect`],
      ["unprotect", `/unprotect`],
      ["restore", `/restore`],
      ["enable", `/versions/1/enable`],
      ["disable", `/versions/1/disable`],
      ["restore a version", `/versions/1/restore`],
    ])("refuses a field in %s's body, which is {}", async (_what, suffix) => {
      const res = await refusedWrite("POST", `/secrets/${secretId}${suffix}`, {
        body: { force: true },
      });
      expectRefusal(res, 400, "invalid_arguments", "force");
    });

    it("refuses a product Scaleway does not have, and a missing one, for add-owner", async () => {
      const path = `/secrets/${secretId}/add-owner`;
      expectRefusal(
        await refusedWrite("POST", path, { body: { product: "s3" } }),
        400,
        "invalid_arguments",
        "product",
      );
      expectRefusal(await refusedWrite("POST", path, { body: {} }), 400, "invalid_arguments");
    });
  });

  describe("payloads", () => {
    const versions = () => `/secrets/${secretId}/versions`;

    it.each([
      ["unpadded base64", "YQ"],
      ["url-safe base64", "-_-_"],
      ["not base64", "hello world"],
    ])("refuses %s naming data", async (_why, data) => {
      const res = await refusedWrite("POST", versions(), { body: { data } });
      expectRefusal(res, 400, "invalid_arguments", "data");
    });

    it("refuses a missing payload", async () => {
      const res = await refusedWrite("POST", versions(), { body: { description: "none" } });
      expectRefusal(res, 400, "invalid_arguments", "data");
    });

    it("refuses a data_crc32 that is not the payload's, or not a number", async () => {
      const data = '{"a":"2"}';
      const wrong = await refusedWrite("POST", versions(), {
        body: { data: b64(data), data_crc32: (crc32(data) + 1) % 2 ** 32 },
      });
      expectRefusal(wrong, 400, "invalid_arguments", "data_crc32");
      expectRefusal(
        await refusedWrite("POST", versions(), {
          body: { data: b64(data), data_crc32: String(crc32(data)) },
        }),
        400,
        "invalid_arguments",
        "data_crc32",
      );
    });

    it("refuses a key_value payload that is not flat JSON, as Scaleway does", async () => {
      const res = await refusedWrite("POST", versions(), {
        body: { data: b64('{"a":{"b":1}}') },
      });
      expectRefusal(res, 400, "invalid_arguments");
    });
  });

  describe("query strings", () => {
    it.each([
      ["a page that is no number", { page: "first" }, "page"],
      ["a page given twice", { page: ["1", "2"] }, "page"],
      ["a negative page size", { page_size: "-1" }, "page_size"],
      ["a page past Coffer's last", { page: "1000001" }, "page"],
      ["a page size past Coffer's largest", { page_size: "1001" }, "page_size"],
      ["a boolean spelt 1", { ephemeral: "1" }, "ephemeral"],
      ["an unknown parameter", { pagesize: "10" }, "pagesize"],
      ["an order Scaleway does not have", { order_by: "random" }, "order_by"],
      ["a project that is no UUID", { project_id: "mine" }, "project_id"],
    ])("refuses %s on a list, naming it", async (_why, query, argument) => {
      const res = await rest("GET", "/secrets", { query });
      expectRefusal(res, 400, "invalid_arguments", argument);
    });

    it("refuses a version status Scaleway does not have", async () => {
      const res = await rest("GET", `/secrets/${secretId}/versions`, {
        query: { status: ["enabled", "gone"] },
      });
      expectRefusal(res, 400, "invalid_arguments", "status[1]");
    });

    it("refuses a parameter on a DELETE, deleting nothing", async () => {
      const res = await refusedWrite("DELETE", `/secrets/${secretId}`, {
        query: { force: "true" },
      });
      expectRefusal(res, 400, "invalid_arguments", "force");
    });

    it("answers 431 in the error shape to a query string past node's 16 KiB of headers", async () => {
      const huge = "a".repeat(http.maxHeaderSize + 1);
      const read = await rest("GET", "/secrets", { query: { name: huge } });
      expectRefusal(read, 431, "invalid_request_error");
      expect(read.json.message).toContain(`${http.maxHeaderSize} bytes`);
      expect(read.headers.get("connection")).toBe("close");
      const write = await refusedWrite("POST", "/secrets", {
        query: { name: huge },
        body: secretBody({}),
      });
      expectRefusal(write, 431, "invalid_request_error");
    });

    it("keeps node's own answer to other malformed requests", async () => {
      const answer = await exchange(running.server.httpPort, "NOT HTTP AT ALL\r\n\r\n");
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    });
  });

  describe("sizes", () => {
    it("answers 413 in the error shape to a body past the port's 512 KiB", async () => {
      const data = Buffer.alloc(600 * 1024, 0x61).toString("base64");
      const res = await refusedWrite("POST", `/secrets/${secretId}/versions`, { body: { data } });
      const body = expectRefusal(res, 413, "invalid_request_error");
      expect(body.message).toContain("524288 bytes");
      // The rest of the body is not read, so the connection is not kept.
      expect(res.headers.get("connection")).toBe("close");
    });

    it("refuses a payload past 64 KiB that fits the port", async () => {
      const data = Buffer.alloc(64 * 1024 + 1, 0x61).toString("base64");
      const res = await refusedWrite("POST", `/secrets/${secretId}/versions`, { body: { data } });
      expectRefusal(res, 400, "invalid_arguments", "data");
    });
  });

  describe("paths and methods", () => {
    it.each([
      ["GET", "/nothing-here"],
      ["POST", "/secrets/{id}/frobnicate"],
      ["GET", "/secrets/{id}/versions/1/access/more"],
      ["GET", "/secrets/"],
      ["DELETE", "/secrets-by-path"],
    ])("answers 404 unknown_resource to %s %s", async (method, path) => {
      const res = await refusedWrite(method, path.replace("{id}", secretId));
      expectRefusal(res, 404, "unknown_resource");
    });

    it.each([
      ["dot segments out of the prefix", "/secret-manager/v1beta1/regions/../regionsX/tags"],
      ["encoded dot segments", "/secret-manager/v1beta1/regions/local/%2e%2e/local/tags"],
      ["dot segments within it", "/secret-manager/v1beta1/regions/local/tags/../tags"],
      ["an empty region", "/secret-manager/v1beta1/regions//tags"],
    ])("answers 404 unknown_resource to a path with %s, as sent", async (_why, path) => {
      // fetch would resolve the dot segments: the request line is written by hand.
      const answer = await exchange(
        running.server.httpPort,
        `GET ${path}?project_id=${PROJECT} HTTP/1.1\r\nHost: coffer\r\nX-Auth-Token: ${token}\r\nConnection: close\r\n\r\n`,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 404 /);
      expect(answer).toMatch(/\r\ncontent-type: application\/json\r\n/i);
      expect(answer).toContain('"type":"unknown_resource"');
    });

    it.each([
      `${REST_PREFIX}/`,
      REST_PREFIX,
      "/secret-manager/v1/regions/local/secrets",
      "/secret-manager/",
    ])("answers 404 unknown_resource to %s, a wrong base path", async (path) => {
      const res = await fetch(`http://127.0.0.1:${running.server.httpPort}${path}`);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toBe("application/json");
      expect(((await res.json()) as { type: string }).type).toBe("unknown_resource");
    });

    it.each([
      ["PUT", "/secrets", "POST, GET"],
      ["DELETE", "/secrets", "POST, GET"],
      ["PUT", "/secrets/{id}", "GET, PATCH, DELETE"],
      ["POST", "/secrets/{id}", "GET, PATCH, DELETE"],
      ["GET", "/secrets/{id}/protect", "POST"],
      ["PATCH", "/secrets/{id}/versions/1/access", "GET"],
      ["POST", "/secrets/browse", "GET"],
      ["DELETE", "/tags", "GET"],
    ])("answers 405 with Allow to %s %s", async (method, path, allow) => {
      const res = await refusedWrite(method, path.replace("{id}", secretId), {
        ...(method !== "GET" && { body: {} }),
      });
      expectRefusal(res, 405, "invalid_request_error");
      expect(res.headers.get("allow")).toBe(allow);
    });

    it.each([
      ["a secret id that is no UUID", "/secrets/abc", "secret_id"],
      ["a revision that is no number", "/secrets/{id}/versions/first", "revision"],
      ["a path segment that does not decode", "/secrets/%E0%A4%A", "secret_id"],
    ])("refuses %s naming it", async (_why, path, argument) => {
      const res = await rest("GET", path.replace("{id}", secretId));
      expectRefusal(res, 400, "invalid_arguments", argument);
    });

    it("refuses a region this server does not have, naming it", async () => {
      const res = await refusedWrite("POST", "/secrets", {
        region: "fr-par",
        body: secretBody({}),
      });
      expectRefusal(res, 400, "invalid_arguments", "region");
    });

    it("answers 404 not_found with the resource and its id", async () => {
      const missing = crypto.randomUUID();
      const res = await refusedWrite("DELETE", `/secrets/${missing}`);
      const body = expectRefusal(res, 404, "not_found");
      expect(body).toMatchObject({ resource: "secret", resource_id: missing });
      const version = await rest("GET", `/secrets/${secretId}/versions/99`);
      expect(expectRefusal(version, 404, "not_found")).toMatchObject({
        resource: "secret_version",
        resource_id: `${secretId}/99`,
      });
    });
  });
});
