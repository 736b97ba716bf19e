import { create, toBinary } from "@bufbuild/protobuf";
import { AccessSecretVersionRequestSchema, SecretService } from "@coffer/api";

/** Request headers of a gRPC call from h2load (the body framed by grpcFrame). */
export const GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"];
/** Request headers of a Connect unary call from h2load (the body unframed). */
export const CONNECT_HEADERS = ["content-type: application/proto", "connect-protocol-version: 1"];
/** The path of a SecretService method, on either port. */
export const methodPath = (method: string) => `/${SecretService.typeName}/${method}`;
/** An AccessSecretVersionRequest for revision 1 of a secret, encoded. */
export const accessBody = (secretId: string) =>
  Buffer.from(
    toBinary(
      AccessSecretVersionRequestSchema,
      create(AccessSecretVersionRequestSchema, { secretId, revision: "1" }),
    ),
  );
