import path from "node:path";
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_DIR } from "../../support/server-process.ts";

/**
 * SecretService as a client that knows nothing of Coffer's TypeScript sees
 * it: loaded at run time from the .proto files by @grpc/proto-loader
 * (protobufjs), with none of packages/api's generated code.
 */

export const SERVICE = "coffer.secretmanager.v1.SecretService";

/** A message as proto-loader decodes it (see the options below). */
export type Message = Record<string, unknown>;

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

/**
 * One RPC of SecretService: its path (`/package.Service/Method`) and the
 * protobuf binary codec of its request and response.
 */
export function method(name: string): grpc.MethodDefinition<Message, Message> {
  const service = definition[SERVICE] as grpc.ServiceDefinition | undefined;
  const m = service?.[name];
  if (m === undefined) throw new Error(`${SERVICE}/${name} is not in the loaded proto`);
  return m as grpc.MethodDefinition<Message, Message>;
}
