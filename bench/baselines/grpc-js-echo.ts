/**
 * Baseline (a) of the access benchmark: a bare @grpc/grpc-js server with one
 * unary method at Coffer's AccessSecretVersion path, which decodes the
 * request and answers a 1 KiB AccessSecretVersionResponse (protobuf-es on
 * both sides, as Coffer). No auth, no database, no audit: what grpc-js
 * itself costs per call. Listens on 127.0.0.1:`BENCH_PORT`; prints
 * `{"port":N}` once listening.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type AccessSecretVersionRequest,
  AccessSecretVersionRequestSchema,
  type AccessSecretVersionResponse,
  AccessSecretVersionResponseSchema,
  SecretService,
} from "@coffer/api";
import * as grpc from "@grpc/grpc-js";
import { echoResponse, listenGrpc } from "./echo-payload.ts";

const server = new grpc.Server();
const definition: grpc.ServiceDefinition = {
  AccessSecretVersion: {
    path: `/${SecretService.typeName}/AccessSecretVersion`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: AccessSecretVersionRequest) =>
      Buffer.from(toBinary(AccessSecretVersionRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(AccessSecretVersionRequestSchema, b),
    responseSerialize: (m: AccessSecretVersionResponse) =>
      Buffer.from(toBinary(AccessSecretVersionResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(AccessSecretVersionResponseSchema, b),
  },
};
server.addService(definition, {
  AccessSecretVersion: (
    call: grpc.ServerUnaryCall<AccessSecretVersionRequest, AccessSecretVersionResponse>,
    callback: grpc.sendUnaryData<AccessSecretVersionResponse>,
  ) => callback(null, echoResponse(call.request)),
});
listenGrpc(server);
