import { randomBytes, randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";
import { type Message, method, SERVICE } from "./support/proto.ts";

/**
 * gRPC-Web as the wire protocol, with no gRPC-Web library: frames built and
 * read by hand (a flags byte, a 4-byte big-endian length, the bytes) and
 * sent with fetch over HTTP/1.1, the way a browser sends them. The messages
 * inside are protobuf binary, encoded by protobufjs from proto/ (see
 * support/proto.ts), so nothing of Coffer's TypeScript takes part.
 *
 * In gRPC-Web the status comes last, as a frame with flags 0x80 holding
 * HTTP/1-style header lines (`grpc-status: 0\r\n...`), since browsers cannot
 * read HTTP trailers.
 */

const DATA = 0x00;
const TRAILERS = 0x80;

interface Frame {
  flags: number;
  payload: Buffer;
}

/** One gRPC-Web frame: flags, a 4-byte big-endian length, the payload. */
function frame(flags: number, payload: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(flags, 0);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

/** Splits a whole response body into frames; throws on a truncated one. */
function parseFrames(body: Buffer): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new Error(`truncated frame prefix at byte ${at}`);
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) throw new Error(`truncated frame at byte ${at}`);
    frames.push({ flags: body.readUInt8(at), payload: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

/** The header lines of a trailers frame, names lowercased. */
function parseTrailers(payload: Buffer): Record<string, string> {
  const trailers: Record<string, string> = {};
  for (const line of payload.toString("latin1").split("\r\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new Error(`not a header line in the trailers frame: ${line}`);
    trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return trailers;
}

interface Response {
  status: number;
  headers: Headers;
  frames: Frame[];
  /** The data frames, decoded as the method's response. */
  messages: Message[];
  /** The trailers frame, which must be the last frame. */
  trailers: Record<string, string>;
}

describe("gRPC-Web by hand: 5-byte-prefixed frames over fetch (HTTP/1.1)", () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  let projectId = "";
  const url = (rpc: string) => `${server?.httpUrl}/${SERVICE}/${rpc}`;
  const payload = Buffer.from(
    `{"api_key": "k-${randomBytes(8).toString("hex")}", "note": "caf\u00e9 \u{1F510}"}`,
  );
  let secretId = "";

  function headers(token: string | undefined, contentType = "application/grpc-web+proto") {
    return {
      "content-type": contentType,
      accept: contentType,
      // What grpc-web's JavaScript client sends along.
      "x-grpc-web": "1",
      "x-user-agent": "grpc-web-javascript/0.1",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    };
  }

  /**
   * A unary gRPC-Web call with the body as given (frames and all), with the
   * admin token unless `auth` is "anonymous".
   */
  async function post(
    rpc: string,
    body: Buffer,
    auth: "admin" | "anonymous" = "admin",
  ): Promise<Response> {
    const token = auth === "admin" ? server?.token : undefined;
    const res = await fetch(url(rpc), {
      method: "POST",
      headers: headers(token),
      body: new Uint8Array(body),
    });
    const frames = parseFrames(Buffer.from(await res.arrayBuffer()));
    const last = frames.at(-1);
    if (last === undefined || last.flags !== TRAILERS) {
      throw new Error(`${rpc}: the response does not end with a trailers frame`);
    }
    const m = method(rpc);
    return {
      status: res.status,
      headers: res.headers,
      frames,
      messages: frames.slice(0, -1).map((f) => {
        if (f.flags !== DATA)
          throw new Error(`${rpc}: a frame with flags ${f.flags} before the end`);
        return m.responseDeserialize(f.payload);
      }),
      trailers: parseTrailers(last.payload),
    };
  }

  /** A unary call with one request message in one data frame. */
  function call(
    rpc: string,
    request: Message,
    auth: "admin" | "anonymous" = "admin",
  ): Promise<Response> {
    return post(rpc, frame(DATA, method(rpc).requestSerialize(request)), auth);
  }

  beforeAll(async () => {
    dataDir = await makeTempDir("grpc-web");
    server = await startServer({ env: { COFFER_DATA_DIR: dataDir } });
    projectId = await server.createProject();
  });

  afterAll(async () => {
    const exit = await server?.stop();
    await removeTempDir(dataDir);
    if (exit) expect(exit).toEqual({ code: 0, signal: null });
  });

  it("answers a unary call with one message frame, then a trailers frame with grpc-status 0", async () => {
    if (server === undefined) throw new Error("no server");
    const created = await call("CreateSecret", {
      project_id: projectId,
      name: "web",
      path: "/interop/grpc-web",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: payload },
    });
    expect(created.status).toBe(200);
    expect(created.headers.get("content-type")).toBe("application/grpc-web+proto");
    expect(created.trailers["grpc-status"]).toBe("0");
    const [createdMessage, ...more] = created.messages;
    expect(more).toEqual([]);
    secretId = String((createdMessage?.secret as Message | undefined)?.id);
    expect(secretId).toMatch(/^[0-9a-f-]{36}$/);

    const requestId = `grpc-web-raw-${randomBytes(6).toString("hex")}`;
    const res = await fetch(url("AccessSecretVersion"), {
      method: "POST",
      headers: { ...headers(server.token), "x-request-id": requestId },
      body: new Uint8Array(
        frame(
          DATA,
          method("AccessSecretVersion").requestSerialize({ secret_id: secretId, revision: "1" }),
        ),
      ),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/grpc-web+proto");
    // The status is not in the HTTP headers: a browser could not read it
    // from trailers, so it comes in the body.
    expect(res.headers.get("grpc-status")).toBeNull();
    const frames = parseFrames(Buffer.from(await res.arrayBuffer()));
    expect(frames.map((f) => f.flags)).toEqual([DATA, TRAILERS]);
    const [data, trailersFrame] = frames as [Frame, Frame];
    const accessed = method("AccessSecretVersion").responseDeserialize(data.payload);
    expect(accessed.revision).toBe(1);
    expect((accessed.data as Buffer).equals(payload)).toBe(true);
    expect(accessed.data_crc32).toBe(crc32(payload));
    expect(parseTrailers(trailersFrame.payload)).toMatchObject({ "grpc-status": "0" });

    // The server took it for gRPC-Web.
    const line = await server.waitForLog((l) => l.request_id === requestId);
    expect(line).toMatchObject({
      method: `${SERVICE}/AccessSecretVersion`,
      protocol: "grpc-web",
      code: "OK",
    });
  });

  it("answers an error with HTTP 200, no message frame, and grpc-status and grpc-message in the trailers frame", async () => {
    const missing = randomUUID();
    const notFound = await call("AccessSecretVersion", { secret_id: missing, revision: "1" });
    expect(notFound.status).toBe(200);
    expect(notFound.messages).toEqual([]);
    expect(notFound.trailers["grpc-status"]).toBe("5"); // NOT_FOUND
    // grpc-message is percent-encoded, as in gRPC.
    expect(decodeURIComponent(notFound.trailers["grpc-message"] ?? "")).toBe(
      `secret ${missing} not found`,
    );

    const anonymous = await call(
      "AccessSecretVersion",
      { secret_id: secretId, revision: "1" },
      "anonymous",
    );
    expect(anonymous.messages).toEqual([]);
    expect(anonymous.trailers["grpc-status"]).toBe("16"); // UNAUTHENTICATED
    expect(anonymous.frames.some((f) => f.payload.includes(payload))).toBe(false);
  });

  it("answers a truncated frame with INVALID_ARGUMENT, not a hang", async () => {
    // The prefix announces 100 bytes; 3 follow.
    const res = await post(
      "AccessSecretVersion",
      Buffer.concat([Buffer.from([DATA, 0, 0, 0, 100]), Buffer.from([1, 2, 3])]),
    );
    expect(res.status).toBe(200);
    expect(res.messages).toEqual([]);
    expect(res.trailers["grpc-status"]).toBe("3"); // INVALID_ARGUMENT
  });

  it("refuses application/grpc-web-text with HTTP 415: only binary gRPC-Web is served", async () => {
    // connect-node implements gRPC-Web's binary mode only. A grpc-web
    // JavaScript client must use mode "grpcweb", not "grpcwebtext"; this
    // shows the refusal is clean (no 200 with a body the client would
    // misread).
    const body = frame(
      DATA,
      method("AccessSecretVersion").requestSerialize({ secret_id: secretId, revision: "1" }),
    );
    const res = await fetch(url("AccessSecretVersion"), {
      method: "POST",
      headers: headers(server?.token, "application/grpc-web-text"),
      body: body.toString("base64"),
    });
    expect(res.status).toBe(415);
    expect(Buffer.from(await res.arrayBuffer()).includes(payload)).toBe(false);
  });

  it("streams WatchSecrets frame by frame as events happen, and ends a bad stream with its status in the trailers frame", async () => {
    const m = method("WatchSecrets");
    const abort = new AbortController();
    const res = await fetch(url("WatchSecrets"), {
      method: "POST",
      headers: headers(server?.token),
      body: new Uint8Array(
        frame(
          DATA,
          m.requestSerialize({
            project_id: projectId,
            selectors: [{ secret_id: secretId }],
            heartbeat_interval: { seconds: 1 },
          }),
        ),
      ),
      signal: abort.signal,
    });
    try {
      expect(res.status).toBe(200);
      if (res.body === null) throw new Error("no body");
      const reader = res.body.getReader();
      let buffered = Buffer.alloc(0);
      /** The next whole frame, read as the bytes arrive. */
      const nextFrame = async (): Promise<Frame> => {
        for (;;) {
          if (buffered.length >= 5) {
            const length = buffered.readUInt32BE(1);
            if (buffered.length >= 5 + length) {
              const next = {
                flags: buffered.readUInt8(0),
                payload: buffered.subarray(5, 5 + length),
              };
              buffered = buffered.subarray(5 + length);
              return next;
            }
          }
          const { done, value } = await reader.read();
          if (done) throw new Error("the stream ended");
          buffered = Buffer.concat([buffered, value]);
        }
      };
      const nextMessage = async (): Promise<Message> => {
        const f = await nextFrame();
        if (f.flags !== DATA) {
          throw new Error(`trailers instead of a message: ${f.payload.toString("latin1")}`);
        }
        return m.responseDeserialize(f.payload);
      };

      // The first frame comes while the stream is open: nothing is held
      // back until the end of the response.
      const start = await nextMessage();
      expect(start.kind).toBe("WATCH_EVENT_KIND_HEARTBEAT");

      const added = await call("CreateSecretVersion", {
        secret_id: secretId,
        data: Buffer.from('{"api_key": "second"}'),
      });
      expect(added.trailers["grpc-status"]).toBe("0");
      let event = await nextMessage();
      while (event.kind === "WATCH_EVENT_KIND_HEARTBEAT") event = await nextMessage();
      expect(event).toMatchObject({
        kind: "WATCH_EVENT_KIND_VERSION_CREATED",
        secret_id: secretId,
        revision: 2,
        version_status: "VERSION_STATUS_ENABLED",
      });
    } finally {
      abort.abort();
    }

    // A stream refused at the start: no message, the status in the trailers frame.
    const bad = await post(
      "WatchSecrets",
      frame(DATA, m.requestSerialize({ project_id: projectId, since_cursor: "not-a-cursor" })),
    );
    expect(bad.status).toBe(200);
    expect(bad.messages).toEqual([]);
    expect(bad.trailers["grpc-status"]).toBe("3"); // INVALID_ARGUMENT
    expect(decodeURIComponent(bad.trailers["grpc-message"] ?? "")).toContain("since_cursor");
  });
});
