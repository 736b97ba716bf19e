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
 * Connect protocol with JSON over HTTP/1.1 and HTTP/2 (unary calls, their
 * error bodies, and WatchSecrets in Connect's streaming envelopes), and
 * connect-node's gRPC-Web and Connect transports.
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
  return curlText(url, JSON.stringify(body), http, token);
}

/** {@link curl} with the body as given, JSON or not. */
function curlText(
  url: string,
  body: string,
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
    child.stdin.end(body);
  });
}

function json(result: CurlResult): Record<string, unknown> {
  return JSON.parse(result.body) as Record<string, unknown>;
}

/** One Connect streaming envelope: flags (0x02: end of stream) and JSON. */
interface Envelope {
  flags: number;
  json: Record<string, unknown>;
}

const END_STREAM = 0x02;

/** A Connect streaming envelope: flags, a 4-byte big-endian length, the message. */
function envelope(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/**
 * A server-streaming call with curl over HTTP/1.1: one enveloped JSON
 * request as `--data-binary`, `Content-Type: application/connect+json`,
 * and the response's envelopes parsed as curl writes them (`--no-buffer`).
 */
class CurlStream {
  readonly envelopes: Envelope[] = [];
  /** Resolves when curl exits, with the HTTP status it saw. */
  readonly done: Promise<{ code: number | null; status: number; contentType: string }>;
  readonly #child: ReturnType<typeof spawn>;
  #buffered = Buffer.alloc(0);
  #listeners = new Set<() => void>();

  constructor(url: string, request: unknown, token: string | undefined, headers: string[] = []) {
    const args = [
      "--silent",
      "--show-error",
      "--no-buffer",
      "--http1.1",
      "--max-time",
      "60",
      "--request",
      "POST",
      "--header",
      "content-type: application/connect+json",
      ...(token === undefined ? [] : ["--header", `authorization: Bearer ${token}`]),
      ...headers.flatMap((h) => ["--header", h]),
      "--data-binary",
      "@-",
      // Binary on stdout; the status line on stderr, after the transfer.
      "--write-out",
      `%{stderr}${MARK}%{http_code} %{content_type}`,
      url,
    ];
    const child = spawn("curl", args, { stdio: ["pipe", "pipe", "pipe"] });
    this.#child = child;
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
      while (this.#buffered.length >= 5) {
        const length = this.#buffered.readUInt32BE(1);
        if (this.#buffered.length < 5 + length) break;
        this.envelopes.push({
          flags: this.#buffered.readUInt8(0),
          json: JSON.parse(this.#buffered.subarray(5, 5 + length).toString("utf8")),
        });
        this.#buffered = this.#buffered.subarray(5 + length);
      }
      for (const listener of this.#listeners) listener();
    });
    this.done = new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => {
        const at = stderr.lastIndexOf(MARK);
        const [status = "0", contentType = ""] =
          at < 0 ? [] : stderr.slice(at + MARK.length).split(" ");
        for (const listener of this.#listeners) listener();
        resolve({ code, status: Number(status), contentType });
      });
    });
    child.stdin?.end(envelope(request));
  }

  /**
   * The first envelope from index `from` on that matches, as it arrives;
   * rejects when curl exits first or after `timeoutMs`.
   */
  waitFor(
    predicate: (e: Envelope) => boolean,
    from = 0,
    timeoutMs = 30_000,
  ): Promise<{ envelope: Envelope; index: number }> {
    return new Promise((resolve, reject) => {
      let exited = false;
      void this.done.then(() => {
        exited = true;
        check();
      });
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(
          new Error(
            `no matching envelope within ${timeoutMs} ms: ${JSON.stringify(this.envelopes)}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        const index = this.envelopes.findIndex((e, i) => i >= from && predicate(e));
        const found = this.envelopes[index];
        if (found !== undefined) {
          clearTimeout(timer);
          this.#listeners.delete(check);
          resolve({ envelope: found, index });
        } else if (exited) {
          clearTimeout(timer);
          this.#listeners.delete(check);
          reject(
            new Error(`curl exited without a matching envelope: ${JSON.stringify(this.envelopes)}`),
          );
        }
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** Ends curl (the client hangs up). */
  stop(): void {
    this.#child.kill("SIGTERM");
  }
}

const kind = (e: Envelope) => e.json.kind;

describe("Connect JSON with curl, gRPC-Web and Connect over HTTP/2", () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  let projectId = "";
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
    projectId = await server.createProject();
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
    // The checksum travels only with the payload (issue 11 item 3).
    expect(first).not.toHaveProperty("dataCrc32");
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

  it("answers a stale etag with a Connect aborted error, HTTP 409, and changes nothing", async () => {
    const current = json(await curl(url("GetSecret"), { secretId }, "1.1", token));
    const etag = String((current.secret as Record<string, unknown>).etag);
    const res = await curl(
      url("UpdateSecret"),
      { secretId, description: "lost update", etag: `"${Number(etag.replaceAll('"', "")) + 100}"` },
      "1.1",
      token,
    );
    expect(res.status).toBe(409);
    expect(res.contentType).toMatch(/^application\/json/);
    // The Connect error body: a code, a message, and nothing from inside the server.
    const body = json(res);
    expect(body.code).toBe("aborted");
    expect(typeof body.message).toBe("string");
    expect(Object.keys(body).filter((k) => k !== "details")).toEqual(["code", "message"]);

    const after = json(await curl(url("GetSecret"), { secretId }, "1.1", token));
    expect((after.secret as Record<string, unknown>).etag).toBe(etag);
    expect((after.secret as Record<string, unknown>).description ?? "").toBe("");
  });

  it("answers a body that is not JSON with a Connect invalid_argument error, HTTP 400", async () => {
    const res = await curlText(url("GetSecret"), '{"secretId": ', "1.1", token);
    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/json/);
    expect(json(res).code).toBe("invalid_argument");
  });

  describe("WatchSecrets over Connect's streaming envelopes (application/connect+json)", () => {
    let watchedId = "";
    /** The cursor of the stream's first heartbeat: where it started. */
    let startCursor = "";
    /** The VERSION_CREATED event the live stream saw. */
    let liveEvent: Record<string, unknown> = {};
    const streams: CurlStream[] = [];
    const stream = (request: unknown, auth: string | undefined, headers: string[] = []) => {
      const s = new CurlStream(url("WatchSecrets"), request, auth, headers);
      streams.push(s);
      return s;
    };

    afterAll(async () => {
      for (const s of streams) s.stop();
      await Promise.all(streams.map((s) => s.done));
    });

    it("delivers a heartbeat, then VERSION_CREATED for a version added by another call, as they happen", async () => {
      const created = json(
        await curl(
          url("CreateSecret"),
          {
            projectId,
            name: "watched",
            path: "/interop/curl/watch",
            firstVersion: { data: Buffer.from("first").toString("base64") },
          },
          "1.1",
          token,
        ),
      );
      watchedId = String((created.secret as Record<string, unknown>).id);

      const live = stream(
        { projectId, selectors: [{ secretId: watchedId }], heartbeatInterval: "1s" },
        token,
      );
      const { envelope: start } = await live.waitFor(() => true);
      expect(start.flags).toBe(0);
      expect(kind(start)).toBe("WATCH_EVENT_KIND_HEARTBEAT");
      startCursor = String(start.json.cursor);
      expect(startCursor).toMatch(/\S/);

      // Added while curl is still reading the stream.
      const added = await curl(
        url("CreateSecretVersion"),
        { secretId: watchedId, data: Buffer.from("second").toString("base64") },
        "1.1",
        token,
      );
      expect(added.status).toBe(200);
      const { envelope: event } = await live.waitFor(
        (e) => kind(e) !== "WATCH_EVENT_KIND_HEARTBEAT",
      );
      expect(event.flags).toBe(0);
      expect(event.json).toMatchObject({
        kind: "WATCH_EVENT_KIND_VERSION_CREATED",
        secretId: watchedId,
        projectId,
        path: "/interop/curl/watch",
        name: "watched",
        revision: 2,
        versionStatus: "VERSION_STATUS_ENABLED",
      });
      expect(JSON.stringify(event.json)).not.toContain(Buffer.from("second").toString("base64"));
      liveEvent = event.json;
      live.stop();
    });

    it("resumes from since_cursor, sends heartbeats, and closes with an end-of-stream envelope", async () => {
      expect(startCursor).not.toBe("");
      // A deadline ends the stream on its own, so that curl sees the whole response.
      const resumed = stream(
        {
          projectId,
          selectors: [{ secretId: watchedId }],
          sinceCursor: startCursor,
          heartbeatInterval: "1s",
        },
        token,
        ["connect-timeout-ms: 5000"],
      );
      const result = await resumed.done;
      expect(result.code).toBe(0);
      expect(result.status).toBe(200);
      expect(result.contentType).toBe("application/connect+json");

      const envelopes = resumed.envelopes;
      const end = envelopes.at(-1);
      expect(end?.flags).toBe(END_STREAM);
      // Every other envelope is a message.
      expect(envelopes.slice(0, -1).every((e) => e.flags === 0)).toBe(true);
      const [first, second, ...rest] = envelopes.slice(0, -1);
      expect(first?.json).toMatchObject({
        kind: "WATCH_EVENT_KIND_HEARTBEAT",
        cursor: startCursor,
      });
      // The one event after the cursor, replayed with the cursor it had live.
      expect(second?.json).toEqual(liveEvent);
      expect(rest.length).toBeGreaterThanOrEqual(1);
      for (const heartbeat of rest) {
        expect(heartbeat.json).toMatchObject({
          kind: "WATCH_EVENT_KIND_HEARTBEAT",
          cursor: liveEvent.cursor,
        });
      }
      // The deadline ends the stream: the end-of-stream envelope says so, or
      // carries no error. Anything else (internal, unavailable) is a failure.
      const error = end?.json.error as Record<string, unknown> | undefined;
      expect([undefined, "deadline_exceeded"]).toContain(error?.code);
    });

    it("ends a refused stream with HTTP 200 and the error in the end-of-stream envelope", async () => {
      const anonymous = stream({ projectId }, undefined);
      const anonymousResult = await anonymous.done;
      expect(anonymousResult.status).toBe(200);
      expect(anonymous.envelopes).toHaveLength(1);
      expect(anonymous.envelopes[0]?.flags).toBe(END_STREAM);
      expect(anonymous.envelopes[0]?.json.error).toMatchObject({ code: "unauthenticated" });

      const tooFast = stream({ projectId, heartbeatInterval: "0.5s" }, token);
      await tooFast.done;
      expect(tooFast.envelopes).toHaveLength(1);
      expect(tooFast.envelopes[0]?.flags).toBe(END_STREAM);
      const error = tooFast.envelopes[0]?.json.error as Record<string, unknown> | undefined;
      expect(error?.code).toBe("invalid_argument");
      expect(String(error?.message)).toContain("heartbeat_interval");
    });
  });
});
