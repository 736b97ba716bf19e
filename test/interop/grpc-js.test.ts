import { randomBytes, randomUUID } from "node:crypto";
import path from "node:path";
import { crc32 } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROTO_DIR, type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * A client that knows nothing of Coffer's TypeScript: plain @grpc/grpc-js,
 * with the messages loaded at run time from the .proto files by
 * @grpc/proto-loader, against the gRPC port of a real server process.
 */

const SERVICE = "coffer.secretmanager.v1.SecretService";

// The imports of google/protobuf/{duration,timestamp}.proto need no include
// directory: protobufjs (under proto-loader) resolves any import ending in
// google/protobuf/<well-known>.proto to its bundled copy before it looks on
// disk.
const definition = protoLoader.loadSync(
  path.join(PROTO_DIR, "coffer/secretmanager/v1/secret_service.proto"),
  {
    includeDirs: [PROTO_DIR],
    // Field names as in the .proto, enums as their names, 64-bit numbers as
    // strings, bytes as Buffers (the default), and unset fields present.
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  },
);

type Message = Record<string, unknown>;

function method(name: string): grpc.MethodDefinition<Message, Message> {
  const service = definition[SERVICE] as grpc.ServiceDefinition | undefined;
  const m = service?.[name];
  if (m === undefined) throw new Error(`${SERVICE}/${name} is not in the loaded proto`);
  return m as grpc.MethodDefinition<Message, Message>;
}

/** The outcome of one unary call: exactly one of response and error is set. */
type Outcome = { response: Message; error?: undefined } | { error: grpc.ServiceError };

function call(client: grpc.Client, name: string, request: Message): Promise<Outcome> {
  const m = method(name);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + 30_000 },
      (error, response) => {
        if (error) resolve({ error });
        else if (response === undefined) reject(new Error(`${name}: no error and no response`));
        else resolve({ response });
      },
    );
  });
}

async function ok(client: grpc.Client, name: string, request: Message): Promise<Message> {
  const outcome = await call(client, name, request);
  if (outcome.error) {
    throw new Error(`${name} failed: ${grpc.status[outcome.error.code]} ${outcome.error.details}`);
  }
  return outcome.response;
}

/**
 * Sends `authorization: Bearer <token>` with every call of a client, as a
 * grpc-js user would on a cleartext channel (call credentials need TLS).
 */
function bearer(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

async function failure(
  client: grpc.Client,
  name: string,
  request: Message,
): Promise<grpc.ServiceError> {
  const outcome = await call(client, name, request);
  if (!outcome.error) throw new Error(`${name} succeeded: ${JSON.stringify(outcome.response)}`);
  return outcome.error;
}

describe("plain @grpc/grpc-js client with proto-loader", () => {
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;
  let client: grpc.Client;
  const projectId = randomUUID();

  beforeAll(async () => {
    dataDir = await makeTempDir("grpc-js");
    server = await startServer({ env: { COFFER_DATA_DIR: dataDir } });
    client = new grpc.Client(server.grpcAddress, grpc.credentials.createInsecure(), {
      interceptors: [bearer(server.token)],
    });
  });

  afterAll(async () => {
    client?.close();
    const exit = await server?.stop();
    await removeTempDir(dataDir);
    // Checked last, so that a failing stop still cleans up.
    if (exit) expect(exit).toEqual({ code: 0, signal: null });
  });

  it("creates a key_value secret and reads the payload back byte for byte", async () => {
    // Not what JSON.stringify would write: odd spacing, escapes, a number
    // with a trailing zero and multi-byte UTF-8, so that a server that
    // re-serialised the JSON, or re-encoded the text, would be caught.
    const payload = Buffer.from(
      '{ "user" : "r\\u00e9mi",\t"password":"p\u00e4ss\u{1F511}w\\"rd" , "port": 5432.0,\n"tls": true }',
      "utf8",
    );
    const created = await ok(client, "CreateSecret", {
      project_id: projectId,
      name: "db",
      path: "/interop/grpc-js",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: payload },
    });
    const secret = created.secret as Message;
    const first = created.first_version as Message;
    expect(secret.name).toBe("db");
    expect(secret.path).toBe("/interop/grpc-js");
    expect(secret.type).toBe("SECRET_TYPE_KEY_VALUE");
    expect(first.revision).toBe(1);
    expect(first.status).toBe("VERSION_STATUS_ENABLED");
    expect(first.data_crc32).toBe(crc32(payload));

    const accessed = await ok(client, "AccessSecretVersion", {
      secret_id: secret.id,
      revision: "latest_enabled",
    });
    expect(accessed.secret_id).toBe(secret.id);
    expect(accessed.revision).toBe(1);
    expect(accessed.type).toBe("SECRET_TYPE_KEY_VALUE");
    expect(Buffer.isBuffer(accessed.data)).toBe(true);
    expect((accessed.data as Buffer).equals(payload)).toBe(true);
    expect(accessed.data_crc32).toBe(crc32(payload));
  });

  it("round-trips arbitrary bytes in an opaque secret, with a client-side checksum", async () => {
    // Every byte value, including NUL and invalid UTF-8, then random bytes up
    // to the 64 KiB limit.
    const payload = Buffer.concat([
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      randomBytes(65_536 - 256),
    ]);
    const created = await ok(client, "CreateSecret", {
      project_id: projectId,
      name: "blob",
      path: "/interop/grpc-js",
      first_version: { data: payload, data_crc32: crc32(payload) },
    });
    const secret = created.secret as Message;
    expect(secret.type).toBe("SECRET_TYPE_OPAQUE");
    const accessed = await ok(client, "AccessSecretVersion", {
      secret_id: secret.id,
      revision: "1",
    });
    expect((accessed.data as Buffer).equals(payload)).toBe(true);
    expect(accessed.data_crc32).toBe(crc32(payload));
  });

  it("refuses a payload that breaks its type with INVALID_ARGUMENT naming the field", async () => {
    const error = await failure(client, "CreateSecret", {
      project_id: projectId,
      name: "nested",
      path: "/interop/grpc-js",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: Buffer.from('{"db": {"host": "h"}}') },
    });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain("first_version.data.db");

    // Nothing was stored: the same name is still free.
    const retried = await ok(client, "CreateSecret", {
      project_id: projectId,
      name: "nested",
      path: "/interop/grpc-js",
      type: "SECRET_TYPE_KEY_VALUE",
      first_version: { data: Buffer.from('{"host": "h"}') },
    });
    expect((retried.secret as Message).name).toBe("nested");
  });

  it("refuses a checksum that does not match with INVALID_ARGUMENT naming the field", async () => {
    const payload = Buffer.from("checksummed");
    const error = await failure(client, "CreateSecret", {
      project_id: projectId,
      name: "crc",
      path: "/interop/grpc-js",
      first_version: { data: payload, data_crc32: (crc32(payload) + 1) >>> 0 },
    });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain("first_version.data_crc32");
  });

  it("refuses a call without a token with UNAUTHENTICATED, and stores nothing", async () => {
    if (server === undefined) throw new Error("no server");
    const anonymous = new grpc.Client(server.grpcAddress, grpc.credentials.createInsecure());
    const request = {
      project_id: projectId,
      name: "anonymous",
      path: "/interop/grpc-js",
      first_version: { data: Buffer.from("written without a token") },
    };
    try {
      const error = await failure(anonymous, "CreateSecret", request);
      expect(error.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(error.code).toBe(16);
    } finally {
      anonymous.close();
    }
    // Nothing was stored: the same name is still free to the admin.
    const created = await ok(client, "CreateSecret", request);
    expect((created.secret as Message).name).toBe("anonymous");
  });

  it("answers NOT_FOUND for a secret that does not exist", async () => {
    const error = await failure(client, "AccessSecretVersion", {
      secret_id: randomUUID(),
      revision: "latest_enabled",
    });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
  });
});
