import {
  create,
  createFileRegistry,
  type DescService,
  type FileRegistry,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverBackends, type TestServer } from "../testing/rpc-servers.ts";

const protoDir = new URL("../../../../proto", import.meta.url).pathname;
const pglite = serverBackends.find((b) => b.name === "pglite");
if (pglite === undefined) throw new Error("no PGlite backend");

/** A reflection response as proto-loader decodes it (camelCase, bytes as Buffers). */
interface ReflectionResponse {
  validHost: string;
  originalRequest: Record<string, unknown>;
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/**
 * A reflection client as grpcurl's works: one bidirectional stream, one
 * request and one response at a time. It is built by grpc-js and
 * proto-loader from the reflection protos, sharing no code with the server.
 */
class ReflectionSession {
  private readonly call: grpc.ClientDuplexStream<object, ReflectionResponse>;
  private readonly responses: ReflectionResponse[] = [];
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(client: grpc.Client & Record<string, unknown>) {
    const open = client.ServerReflectionInfo as () => grpc.ClientDuplexStream<
      object,
      ReflectionResponse
    >;
    this.call = open.call(client);
    this.call.on("data", (r: ReflectionResponse) => {
      this.responses.push(r);
      this.wake?.();
    });
    this.call.on("error", (e: Error) => {
      this.failure = e;
      this.wake?.();
    });
  }

  async ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
    this.call.write({ host: "coffer.test", ...request });
    const deadline = Date.now() + 10_000;
    while (this.responses.length === 0) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error("no reflection response within 10 s");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.responses.shift() as ReflectionResponse;
  }

  /** Half-closes the stream; resolves with the status the server ends it with. */
  end(): Promise<grpc.StatusObject> {
    return new Promise((resolve) => {
      this.call.on("status", resolve);
      this.call.end();
    });
  }
}

/**
 * The files of a file_descriptor_response, as a registry of the first (the
 * one asked for) that must resolve every import, by name, from the same
 * response, as a client does.
 */
function registryOf(res: ReflectionResponse): { names: string[]; registry: FileRegistry } {
  const files = (res.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) =>
    fromBinary(FileDescriptorProtoSchema, b),
  );
  const [first] = files;
  if (first === undefined) throw new Error(`no files in ${JSON.stringify(res)}`);
  return {
    names: files.map((f) => f.name),
    registry: createFileRegistry(first, (name) => files.find((f) => f.name === name)),
  };
}

/** A unary call made only from descriptors learned by reflection, as grpcurl and Postman do. */
function callDynamically(
  address: string,
  service: DescService,
  method: string,
  init: Record<string, unknown>,
): Promise<{ code: grpc.status; response?: Record<string, unknown> }> {
  const m = service.methods.find((x) => x.name === method);
  if (m === undefined) throw new Error(`${service.typeName} has no method ${method}`);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const request = Buffer.from(toBinary(m.input, create(m.input, init)));
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/${service.typeName}/${m.name}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err, bytes) => {
        client.close();
        if (err) resolve({ code: err.code });
        else {
          const response = fromBinary(m.output, bytes ?? Buffer.alloc(0));
          resolve({ code: grpc.status.OK, response: response as Record<string, unknown> });
        }
      },
    );
  });
}

const SERVICES = [
  "coffer.admin.v1.AdminService",
  "coffer.auth.v1.AuthService",
  "coffer.secretmanager.v1.SecretService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

let server: TestServer;
beforeAll(async () => {
  server = await pglite.start();
}, 120_000);
afterAll(() => server?.stop());

describe.each(["v1", "v1alpha"])("grpc.reflection.%s on the gRPC port", (version) => {
  let session: ReflectionSession;
  let address: string;
  beforeAll(() => {
    address = `127.0.0.1:${server.server.grpcPort}`;
    const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
      includeDirs: [protoDir],
      oneofs: true,
      arrays: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
    };
    const Reflection = pkg.grpc.reflection[version]?.ServerReflection;
    if (Reflection === undefined) throw new Error(`no ${version} client`);
    session = new ReflectionSession(
      new Reflection(address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
        Record<string, unknown>,
    );
  });

  it("lists the services served, without a token", async () => {
    const res = await session.ask({ listServices: "*" });
    expect(res.validHost).toBe("coffer.test");
    expect(res.listServicesResponse?.service.map((s) => s.name).sort()).toEqual(SERVICES);
  });

  it("resolves a service symbol to its file and every file it imports, enough to call it", async () => {
    const res = await session.ask({
      fileContainingSymbol: "coffer.secretmanager.v1.SecretService",
    });
    const { names, registry } = registryOf(res);
    expect(names[0]).toBe("coffer/secretmanager/v1/secret_service.proto");
    expect(new Set(names)).toEqual(
      new Set([
        "coffer/secretmanager/v1/secret_service.proto",
        "coffer/secretmanager/v1/resources.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
    const service = registry.getService("coffer.secretmanager.v1.SecretService");
    expect(service?.methods.map((m) => m.name)).toContain("AccessSecretVersion");
    expect(
      registry.getMessage("coffer.secretmanager.v1.Secret")?.field.createdAt?.message?.typeName,
    ).toBe("google.protobuf.Timestamp");
    // Reflection describes the API; every call still needs a token.
    if (service === undefined) throw new Error("no SecretService in the reflected files");
    const unauthenticated = await callDynamically(address, service, "GetSecret", {
      secretId: "0f8fad5b-d9cb-469f-a165-70867728950e",
    });
    expect(unauthenticated.code).toBe(grpc.status.UNAUTHENTICATED);

    // AuthService too, whose one call needs no token: a JWT not accepted is UNAUTHENTICATED.
    const auth = registryOf(
      await session.ask({ fileContainingSymbol: "coffer.auth.v1.AuthService" }),
    ).registry.getService("coffer.auth.v1.AuthService");
    if (auth === undefined) throw new Error("no AuthService in the reflected files");
    const refused = await callDynamically(address, auth, "ExchangeToken", { jwt: "a.b.c" });
    expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("resolves methods, nested types, enum values and fields; a file by name; the health service, callable", async () => {
    for (const [symbol, file] of [
      ["coffer.secretmanager.v1.SecretService.AccessSecretVersion", "secret_service.proto"],
      ["coffer.secretmanager.v1.SECRET_TYPE_KEY_VALUE", "resources.proto"],
      ["coffer.secretmanager.v1.GetSecretRequest.secret_id", "secret_service.proto"],
      [".coffer.admin.v1.AdminService", "admin_service.proto"],
      ["coffer.auth.v1.AuthService.ExchangeToken", "auth_service.proto"],
      ["grpc.health.v1.HealthCheckResponse.ServingStatus", "health.proto"],
      ["google.protobuf.Timestamp", "timestamp.proto"],
    ]) {
      const res = await session.ask({ fileContainingSymbol: symbol });
      expect(registryOf(res).names[0], symbol).toMatch(new RegExp(`/${file}$`));
    }
    const byName = await session.ask({ fileByFilename: "google/protobuf/duration.proto" });
    expect(registryOf(byName).registry.getMessage("google.protobuf.Duration")).toBeDefined();

    const health = await session.ask({ fileByFilename: "grpc/health/v1/health.proto" });
    const service = registryOf(health).registry.getService("grpc.health.v1.Health");
    if (service === undefined) throw new Error("no grpc.health.v1.Health in the reflected file");
    const check = await callDynamically(address, service, "Check", { service: "" });
    expect(check).toEqual({
      code: grpc.status.OK,
      response: expect.objectContaining({ status: 1 }),
    });
  });

  it("answers what it does not know with NOT_FOUND, and the stream goes on", async () => {
    for (const request of [
      { fileContainingSymbol: "coffer.secretmanager.v1.NoSuchThing" },
      { fileByFilename: "coffer/secretmanager/v1/nope.proto" },
      { allExtensionNumbersOfType: "coffer.secretmanager.v1.NoSuchThing" },
      {
        fileContainingExtension: {
          containingType: "coffer.secretmanager.v1.Secret",
          extensionNumber: 999,
        },
      },
    ]) {
      const res = await session.ask(request);
      expect(res.errorResponse?.errorCode, JSON.stringify(request)).toBe(grpc.status.NOT_FOUND);
    }
    const numbers = await session.ask({
      allExtensionNumbersOfType: "coffer.secretmanager.v1.Secret",
    });
    expect(numbers.allExtensionNumbersResponse).toEqual({
      baseTypeName: "coffer.secretmanager.v1.Secret",
      extensionNumber: [],
    });
    const again = await session.ask({ listServices: "" });
    expect(again.listServicesResponse?.service).toHaveLength(SERVICES.length);
    expect((await session.end()).code).toBe(grpc.status.OK);
  });
});
