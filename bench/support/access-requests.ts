import { writeFile } from "node:fs/promises";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { AccessSecretVersionRequestSchema, SecretService } from "@coffer/api";
import { grpcFrame } from "./grpc-frames.ts";
import type { H2loadOptions } from "./h2load.ts";

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

/**
 * What h2load needs to call AccessSecretVersion of `secretId` (revision 1)
 * on a server: the request body, written to `dir/body.bin` (framed for
 * gRPC), the headers (with the bearer token when one is given) and the URL
 * on the gRPC port or, for Connect, the HTTP port.
 */
export async function accessLoad(
  dir: string,
  server: { url: string; grpcUrl: string },
  o: { connect: boolean; secretId: string; token: string | undefined },
): Promise<Pick<H2loadOptions, "url" | "bodyFile" | "headers">> {
  const request = accessBody(o.secretId);
  const bodyFile = path.join(dir, "body.bin");
  await writeFile(bodyFile, o.connect ? request : grpcFrame(request));
  return {
    url: (o.connect ? server.url : server.grpcUrl) + methodPath("AccessSecretVersion"),
    bodyFile,
    headers: [
      ...(o.connect ? CONNECT_HEADERS : GRPC_HEADERS),
      ...(o.token === undefined ? [] : [`authorization: Bearer ${o.token}`]),
    ],
  };
}
