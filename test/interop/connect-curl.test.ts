import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { createCofferClient, SecretType } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * The HTTP port as tools other than our client see it: curl speaking the
 * Connect protocol with JSON over HTTP/1.1 and HTTP/2, and connect-node's
 * gRPC-Web and Connect transports.
 */

const METHOD = "coffer.secretmanager.v1.SecretService";

interface CurlResult {
  status: number;
  httpVersion: string;
  contentType: string;
  body: string;
}

const MARK = "\n@@curl@@";

/**
 * POSTs `body` as JSON with curl, the way a person would from a shell, with
 * `authorization: Bearer <token>` unless `token` is undefined.
 */
function curl(
  url: string,
  body: unknown,
  http: "1.1" | "2",
  token: string | undefined,
): Promise<CurlResult> {
  const args = [
    "--silent",
    "--show-error",
    "--max-time",
    "30",
    http === "1.1" ? "--http1.1" : "--http2-prior-knowledge",
    "--request",
    "POST",
    "--header",
    "content-type: application/json",
    ...(token === undefined ? [] : ["--header", `authorization: Bearer ${token}`]),
    "--data-binary",
    "@-",
    "--write-out",
    `${MARK}%{http_code} %{http_version} %{content_type}`,
    url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("curl", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const at = stdout.lastIndexOf(MARK);
      if (code !== 0 || at < 0) {
        reject(new Error(`curl exited with ${code}: ${stderr}${stdout}`));
        return;
      }
      const [status = "", httpVersion = "", contentType = ""] = stdout
        .slice(at + MARK.length)
        .split(" ");
      resolve({ status: Number(status), httpVersion, contentType, body: stdout.slice(0, at) });
    });
    child.stdin.end(JSON.stringify(body));
  });
}

function json(result: CurlResult): Record<string, unknown> {
  return JSON.parse(result.body) as Record<string, unknown>;
}

describe("Connect JSON with curl, gRPC-Web and Connect over HTTP/2", () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  const projectId = randomUUID();
  const url = (rpc: string) => `${server?.httpUrl}/${METHOD}/${rpc}`;
  /** The admin token the server was started with. */
  let token = "";
  // A created secret shared by the tests below.
  let secretId = "";
  const payload = Buffer.from(
    `{"api_key": "k-${randomBytes(8).toString("hex")}", "region": "\u00eele-de-France \u{1F5DD}"}`,
  );

  beforeAll(async () => {
    dataDir = await makeTempDir("connect");
    server = await startServer({ env: { COFFER_DATA_DIR: dataDir } });
    token = server.token;
  });

  afterAll(async () => {
    const exit = await server?.stop();
    await removeTempDir(dataDir);
    if (exit) expect(exit).toEqual({ code: 0, signal: null });
  });

  it("creates a secret with curl over HTTP/1.1, bytes as base64", async () => {
    const res = await curl(
      url("CreateSecret"),
      {
        projectId,
        name: "api",
        path: "/interop/curl",
        type: "SECRET_TYPE_KEY_VALUE",
        firstVersion: { data: payload.toString("base64") },
      },
      "1.1",
      token,
    );
    expect(res.httpVersion).toBe("1.1");
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json/);
    const body = json(res);
    const secret = body.secret as Record<string, unknown>;
    const first = body.firstVersion as Record<string, unknown>;
    expect(secret.type).toBe("SECRET_TYPE_KEY_VALUE");
    expect(secret.path).toBe("/interop/curl");
    expect(first.revision).toBe(1);
    expect(first.dataCrc32).toBe(crc32(payload));
    secretId = String(secret.id);
  });

  it("accesses the version with curl over HTTP/1.1, byte for byte", async () => {
    const res = await curl(
      url("AccessSecretVersion"),
      { secretId, revision: "latest" },
      "1.1",
      token,
    );
    expect(res.httpVersion).toBe("1.1");
    expect(res.status).toBe(200);
    const body = json(res);
    expect(body.secretId).toBe(secretId);
    expect(body.revision).toBe(1);
    const data = Buffer.from(String(body.data), "base64");
    expect(data.equals(payload)).toBe(true);
    expect(body.dataCrc32).toBe(crc32(payload));
  });

  it("answers a bad payload with a Connect invalid_argument error naming the field", async () => {
    const res = await curl(
      url("CreateSecret"),
      {
        projectId,
        name: "bad",
        path: "/interop/curl",
        type: "SECRET_TYPE_KEY_VALUE",
        firstVersion: { data: Buffer.from('{"list": [1, 2]}').toString("base64") },
      },
      "1.1",
      token,
    );
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/json/);
    const body = json(res);
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("first_version.data.list");
  });

  it("answers a call without a token with a Connect unauthenticated error, HTTP 401", async () => {
    // The secret exists, and is still refused: nothing is read, nothing is revealed.
    const res = await curl(
      url("AccessSecretVersion"),
      { secretId, revision: "latest" },
      "1.1",
      undefined,
    );
    expect(res.status).toBe(401);
    expect(res.contentType).toMatch(/^application\/json/);
    const body = json(res);
    expect(body.code).toBe("unauthenticated");
    expect(res.body).not.toContain(payload.toString("base64"));
    expect(body.data).toBeUndefined();
  });

  it("answers an unknown secret with a Connect not_found error", async () => {
    const res = await curl(
      url("AccessSecretVersion"),
      { secretId: randomUUID(), revision: "latest" },
      "1.1",
      token,
    );
    expect(res.status).toBe(404);
    expect(res.contentType).toMatch(/^application\/json/);
    expect(json(res).code).toBe("not_found");
  });

  it("speaks Connect JSON over cleartext HTTP/2 on the same port", async () => {
    const created = await curl(
      url("CreateSecretVersion"),
      { secretId, data: Buffer.from('{"api_key": "second"}').toString("base64") },
      "2",
      token,
    );
    expect(created.httpVersion).toBe("2");
    expect(created.status).toBe(200);
    expect((json(created).version as Record<string, unknown>).revision).toBe(2);

    const res = await curl(url("AccessSecretVersion"), { secretId, revision: "1" }, "2", token);
    expect(res.httpVersion).toBe("2");
    expect(res.status).toBe(200);
    expect(Buffer.from(String(json(res).data), "base64").equals(payload)).toBe(true);

    const missing = await curl(
      url("AccessSecretVersion"),
      { secretId: randomUUID(), revision: "1" },
      "2",
      token,
    );
    expect(missing.status).toBe(404);
    expect(json(missing).code).toBe("not_found");
  });

  it("serves gRPC-Web over HTTP/1.1 to @coffer/client", async () => {
    if (server === undefined) throw new Error("no server");
    const requestId = `grpc-web-${randomBytes(6).toString("hex")}`;
    const coffer = createCofferClient({
      url: server.httpUrl,
      protocol: "grpc-web",
      httpVersion: "1.1",
      token,
      timeoutMs: 30_000,
      interceptors: [
        (next) => (req) => {
          req.header.set("x-request-id", requestId);
          return next(req);
        },
      ],
    });
    const res = await coffer.accessSecretVersion({ secretId, revision: "1" });
    expect(res.revision).toBe(1);
    expect(res.type).toBe(SecretType.KEY_VALUE);
    expect(Buffer.from(res.data).equals(payload)).toBe(true);
    expect(res.dataCrc32).toBe(crc32(res.data));

    // The server saw this call as gRPC-Web.
    const line = await server.waitForLog((l) => l.request_id === requestId);
    expect(line).toMatchObject({
      method: `${METHOD}/AccessSecretVersion`,
      protocol: "grpc-web",
      code: "OK",
    });

    const err = await coffer
      .accessSecretVersion({ secretId: randomUUID(), revision: "1" })
      .then(() => undefined, ConnectError.from);
    expect(err?.code).toBe(Code.NotFound);
  });

  it("serves Connect over HTTP/2 to @coffer/client", async () => {
    if (server === undefined) throw new Error("no server");
    const coffer = createCofferClient({
      url: server.httpUrl,
      httpVersion: "2",
      token,
      timeoutMs: 30_000,
    });
    const res = await coffer.accessSecretVersion({ secretId, revision: "latest_enabled" });
    expect(res.revision).toBe(2);
    expect(Buffer.from(res.data).toString()).toBe('{"api_key": "second"}');
    expect(res.dataCrc32).toBe(crc32(res.data));

    const err = await coffer
      .createSecretVersion({ secretId, data: new TextEncoder().encode("not json") })
      .then(() => undefined, ConnectError.from);
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toMatch(/^data: /);
  });
});
