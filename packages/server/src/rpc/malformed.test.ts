import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { AdminService, Role, SecretService } from "@coffer/api";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.ts";
import { createTestToken, startTestServer } from "../testing/backends.ts";
import { testTransport } from "../testing/clients.ts";

/**
 * Requests a client sends wrong: bodies that do not decode, compression that
 * is not, times past what the database stores, absurd region names. Each is
 * the client's fault and answered INVALID_ARGUMENT, never INTERNAL, on both
 * listeners and every protocol.
 */

const GET_SECRET = "/coffer.secretmanager.v1.SecretService/GetSecret";

let server: RunningServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer();
  token = (
    await createTestToken(server.domain, [{ projectId: "", role: "admin", pathPrefix: "/" }])
  ).value;
});
afterAll(() => server?.stop());

/** A GetSecretRequest whose secret_id (field 2) holds `bytes` as they are. */
const secretIdOf = (bytes: number[]) => Buffer.from([0x12, bytes.length, ...bytes]);
const UNDECODABLE: [string, Buffer][] = [
  ["a field declaring 32 bytes, holding 1", Buffer.from([0x12, 0x20, 0x61])],
  ["an overlong varint", Buffer.from([0x08, ...Array(10).fill(0xff), 0x01])],
  ["a string that is not UTF-8", secretIdOf([0xff, 0xfe])],
  ["a start-group tag", Buffer.from([0x0b])],
];

const envelope = (flags: number, payload: Buffer) => {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(flags, 0);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
};

/** The grpc-status of a gRPC-Web response: its header, or its trailers frame. */
function grpcWebStatus(res: Response, body: Buffer): number | undefined {
  const header = res.headers.get("grpc-status");
  if (header !== null) return Number(header);
  const match = /grpc-status:\s*(\d+)/i.exec(body.toString("latin1"));
  return match ? Number(match[1]) : undefined;
}

async function post(path: string, headers: Record<string, string>, body: Buffer) {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, ...headers },
    body: new Uint8Array(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { res, body: Buffer.from(await res.arrayBuffer()) };
}

function grpcStatusOverH2(port: number, headers: Record<string, string>, body: Buffer) {
  return new Promise<{ status: number | undefined; message: string }>((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": GET_SECRET,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${token}`,
      ...headers,
    });
    let status: number | undefined;
    let message = "";
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
      if (typeof h["grpc-message"] === "string") message = decodeURIComponent(h["grpc-message"]);
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => undefined);
    stream.on("error", reject);
    stream.setTimeout(10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on("close", () => {
      session.close();
      resolve({ status, message });
    });
    stream.end(body);
  });
}

describe("a body that does not decode", () => {
  it.each(UNDECODABLE)("over Connect: %s is INVALID_ARGUMENT (HTTP 400)", async (_, bytes) => {
    const { res, body } = await post(GET_SECRET, { "content-type": "application/proto" }, bytes);
    expect(res.status).toBe(400);
    expect(JSON.parse(body.toString())).toEqual({
      code: "invalid_argument",
      message: "request is not a valid coffer.secretmanager.v1.GetSecretRequest message",
    });
  });

  it.each(UNDECODABLE)("over gRPC-Web: %s is INVALID_ARGUMENT", async (_, bytes) => {
    const { res, body } = await post(
      GET_SECRET,
      { "content-type": "application/grpc-web+proto" },
      envelope(0, bytes),
    );
    expect(grpcWebStatus(res, body)).toBe(Code.InvalidArgument);
  });

  it.each(UNDECODABLE)("over gRPC, on both listeners: %s is INVALID_ARGUMENT", async (_, bytes) => {
    for (const port of [server.grpcPort, server.httpPort]) {
      const answer = await grpcStatusOverH2(port, {}, envelope(0, bytes));
      expect(answer, `port ${port}`).toEqual({
        status: Code.InvalidArgument,
        message: "request is not a valid coffer.secretmanager.v1.GetSecretRequest message",
      });
    }
  });

  it("a gzip body that is not gzip, or a gzip message that does not decode, is INVALID_ARGUMENT", async () => {
    const connectProto = { "content-type": "application/proto", "content-encoding": "gzip" };
    for (const bytes of [Buffer.from("x"), gzipSync(UNDECODABLE[0]?.[1] ?? Buffer.alloc(0))]) {
      const { res } = await post(GET_SECRET, connectProto, bytes);
      expect(res.status).toBe(400);
      const answer = await grpcStatusOverH2(
        server.httpPort,
        { "grpc-encoding": "gzip" },
        envelope(1, bytes),
      );
      expect(answer.status).toBe(Code.InvalidArgument);
    }
  });

  it("a well-formed body still reaches the handler, plain or compressed", async () => {
    const valid = secretIdOf([...Buffer.from("not-a-uuid")]);
    const plain = await post(GET_SECRET, { "content-type": "application/proto" }, valid);
    const zipped = await post(
      GET_SECRET,
      { "content-type": "application/proto", "content-encoding": "gzip" },
      gzipSync(valid),
    );
    for (const { res, body } of [plain, zipped]) {
      expect(res.status).toBe(400);
      expect(JSON.parse(body.toString()).message).toMatch(/^secret_id: must be a UUID/);
    }
    const grpc = await grpcStatusOverH2(server.httpPort, {}, envelope(0, valid));
    expect(grpc.message).toMatch(/^secret_id: must be a UUID/);
  });

  it("the compressed flag without grpc-encoding stays INTERNAL, as the gRPC spec asks", async () => {
    // PROTOCOL-HTTP2.md, Compressed-Flag: "If the Message-Encoding header is
    // not present, a Compressed-Flag bit of 1 MUST be treated as an error by
    // the server, which MUST reply with the status INTERNAL."
    const answer = await grpcStatusOverH2(server.httpPort, {}, envelope(1, Buffer.from("x")));
    expect(answer.status).toBe(Code.Internal);
  });
});

describe("times the database cannot store, and region names", () => {
  const clients = (protocol: "grpc" | "connect") => {
    const port = protocol === "grpc" ? server.grpcPort : server.httpPort;
    const transport = testTransport({
      url: `http://127.0.0.1:${port}`,
      protocol,
      token,
    });
    return {
      admin: createClient(AdminService, transport),
      secrets: createClient(SecretService, transport),
    };
  };
  const refusal = async (call: Promise<unknown>) => {
    const err = await call.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toBeDefined();
    return { code: err?.code, message: err?.rawMessage ?? "" };
  };

  it.each(["grpc", "connect"] as const)("over %s", async (protocol) => {
    const { admin, secrets } = clients(protocol);
    const year10000 = { seconds: 253_402_300_800n, nanos: 0 };
    expect(
      await refusal(
        admin.createToken({
          name: "far",
          grants: [{ role: Role.ADMIN, pathPrefix: "/" }],
          expiresAt: year10000,
        }),
      ),
    ).toEqual({
      code: Code.InvalidArgument,
      message: "expires_at: must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z",
    });
    // The last nanosecond of year 9999 rounds up to year 10000 in milliseconds.
    const lastNanosecond = { seconds: 253_402_300_799n, nanos: 999_999_999 };
    const farPast = { seconds: -62_135_596_801n, nanos: 0 };
    for (const [field, request] of [
      ["end_time", { endTime: lastNanosecond }],
      ["start_time", { startTime: farPast }],
    ] as const) {
      const answer = await refusal(admin.listAuditEvents(request));
      expect(answer.code).toBe(Code.InvalidArgument);
      expect(answer.message).toMatch(new RegExp(`^${field}: must be between`));
    }
    const lastMillisecond = { seconds: 253_402_300_799n, nanos: 999_000_000 };
    await expect(admin.listAuditEvents({ endTime: lastMillisecond })).resolves.toBeDefined();

    // Out-of-range nanos (issue 11 item 17): refused by name, as durations are,
    // never carried silently into the seconds.
    const inAnHour = BigInt(Math.floor(Date.now() / 1000) + 3600);
    for (const nanos of [-1, 1_500_000_000]) {
      const expiresAt = { seconds: inAnHour, nanos };
      const want = {
        code: Code.InvalidArgument,
        message: `ephemeral_properties.expires_at: nanos must be between 0 and 999999999 (got ${nanos})`,
      };
      expect(
        await refusal(
          secrets.updateSecretVersion({
            secretId: randomUUID(),
            revision: "1",
            ephemeralProperties: { expiresAt, expiresOnceAccessed: true },
          }),
        ),
      ).toEqual(want);
      expect(
        await refusal(
          admin.createToken({
            name: "nanos",
            grants: [{ role: Role.ADMIN, pathPrefix: "/" }],
            expiresAt,
          }),
        ),
      ).toEqual({ ...want, message: want.message.replace("ephemeral_properties.", "") });
      for (const [field, request] of [
        ["start_time", { startTime: expiresAt }],
        ["end_time", { endTime: expiresAt }],
      ] as const) {
        const answer = await refusal(admin.listAuditEvents(request));
        expect(answer).toEqual({
          code: Code.InvalidArgument,
          message: `${field}: nanos must be between 0 and 999999999 (got ${nanos})`,
        });
      }
    }

    const region = await refusal(secrets.listSecrets({ region: `${"r".repeat(1000)}"\n` }));
    expect(region).toEqual({
      code: Code.InvalidArgument,
      message: `region: unknown region "${"r".repeat(64)}..."; this server has: ${server.domain.regions
        .all()
        .map((r) => r.name)
        .join(", ")}`,
    });
  });
});
