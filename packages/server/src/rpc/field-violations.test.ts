import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { AnySchema, anyUnpack } from "@bufbuild/protobuf/wkt";
import { SecretType } from "@coffer/api";
import { BadRequestSchema } from "@coffer/api/google/rpc";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.ts";
import { createTestToken, PROJECT, startTestServer } from "../testing/backends.ts";
import { type Protocol, secretClient } from "../testing/clients.ts";

/**
 * A refused field travels apart from the message, as a google.rpc.BadRequest
 * field violation (the standard detail), over every protocol the server
 * speaks: the console, the CLI and other languages' clients read the field
 * path and the rule without parsing text.
 */

const protoDir = new URL("../../../../proto", import.meta.url).pathname;

/** database_credentials whose port is not a port: refused at first_version.data.port. */
const badPort = new TextEncoder().encode(
  JSON.stringify({
    engine: "postgres",
    host: "db",
    port: "http",
    dbname: "app",
    username: "u",
    password: "p",
  }),
);
const PORT_VIOLATION = {
  field: "first_version.data.port",
  description: "must be a string of digits from 0 to 65535",
};

let server: RunningServer;
let token: string;
beforeAll(async () => {
  server = await startTestServer();
  token = (
    await createTestToken(server.domain, [{ projectId: PROJECT, role: "admin", pathPrefix: "/" }])
  ).value;
});
afterAll(() => server?.stop());

describe("a refused field as a google.rpc.BadRequest detail", () => {
  for (const protocol of ["connect", "grpc-web", "grpc"] satisfies Protocol[]) {
    it(`names the field and the rule over ${protocol}`, async () => {
      const port = protocol === "grpc" ? server.grpcPort : server.httpPort;
      const client = secretClient({ url: `http://127.0.0.1:${port}`, protocol, token });
      const error = await client
        .createSecret({
          projectId: PROJECT,
          name: `bad-port-${protocol}`,
          path: "/field-violations",
          type: SecretType.DATABASE_CREDENTIALS,
          firstVersion: { data: badPort },
        })
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      expect(error?.code).toBe(Code.InvalidArgument);
      expect(error?.rawMessage).toBe(`${PORT_VIOLATION.field}: ${PORT_VIOLATION.description}`);
      const details = error?.findDetails(BadRequestSchema) ?? [];
      expect(
        details.map((d) =>
          d.fieldViolations.map(({ field, description }) => ({ field, description })),
        ),
      ).toEqual([[PORT_VIOLATION]]);
    });
  }

  it("sends no violation for a refusal that names no field", async () => {
    const client = secretClient({ url: `http://127.0.0.1:${server.httpPort}`, token });
    const error = await client.getSecret({ secretId: crypto.randomUUID() }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.NotFound);
    expect(error?.findDetails(BadRequestSchema)).toEqual([]);
  });

  it("reaches a @grpc/grpc-js client as google.rpc.Status in grpc-status-details-bin", async () => {
    const definition = protoLoader.loadSync("coffer/secretmanager/v1/secret_service.proto", {
      includeDirs: [protoDir],
    });
    const Service = (
      grpc.loadPackageDefinition(definition) as unknown as {
        coffer: { secretmanager: { v1: { SecretService: grpc.ServiceClientConstructor } } };
      }
    ).coffer.secretmanager.v1.SecretService;
    const client = new Service(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    try {
      const status = await new Promise<grpc.ServiceError>((resolve, reject) => {
        (
          client as unknown as {
            CreateSecret(
              request: object,
              metadata: grpc.Metadata,
              callback: (err: grpc.ServiceError | null) => void,
            ): void;
          }
        ).CreateSecret(
          {
            projectId: PROJECT,
            name: "bad-port-grpc-js",
            path: "/field-violations",
            type: "SECRET_TYPE_DATABASE_CREDENTIALS",
            firstVersion: { data: Buffer.from(badPort) },
          },
          metadata,
          (err: grpc.ServiceError | null) =>
            err === null ? reject(new Error("the call succeeded")) : resolve(err),
        );
      });
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      const bin = status.metadata.get("grpc-status-details-bin")[0];
      expect(bin).toBeInstanceOf(Buffer);
      // google.rpc.Status, decoded by hand from its published field numbers
      // (code = 1, message = 2, repeated google.protobuf.Any details = 3).
      const reader = new BinaryReader(bin as Buffer);
      const anys: Uint8Array[] = [];
      let code = -1;
      while (reader.pos < reader.len) {
        const [number, wireType] = reader.tag();
        if (number === 1) code = reader.int32();
        else if (number === 3) anys.push(reader.bytes());
        else reader.skip(wireType);
      }
      expect(code).toBe(grpc.status.INVALID_ARGUMENT);
      const [any] = anys.map((b) => fromBinary(AnySchema, b));
      expect(any?.typeUrl).toBe("type.googleapis.com/google.rpc.BadRequest");
      const badRequest = any === undefined ? undefined : anyUnpack(any, BadRequestSchema);
      expect(
        badRequest?.fieldViolations.map(({ field, description }) => ({ field, description })),
      ).toEqual([PORT_VIOLATION]);
    } finally {
      client.close();
    }
  });
});
