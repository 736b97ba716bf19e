/**
 * The Coffer API as TypeScript: messages, enums and service descriptors
 * generated from `proto/` by buf + protoc-gen-es. Regenerate with
 * `npm run generate`; never edit `src/gen` by hand.
 */

export * from "./gen/coffer/admin/v1/admin_service_pb.ts";
export * from "./gen/coffer/auth/v1/auth_service_pb.ts";
export * from "./gen/coffer/secretmanager/v1/resources_pb.ts";
export * from "./gen/coffer/secretmanager/v1/secret_service_pb.ts";
