import { randomUUID } from "node:crypto";
import {
  AdminService,
  type CofferClient,
  createCofferClient,
  createCofferTransport,
  Role,
  TokenFormat,
} from "@coffer/client";
import { type Client, createClient } from "@connectrpc/connect";
import type { ServerProcess } from "../../support/server-process.ts";

/**
 * Coffer's own clients beside the Scaleway one: the admin API that makes
 * projects and tokens and reads the audit trail, and SecretService over
 * Connect and gRPC, for reading back what the REST API wrote.
 */

export type Admin = Client<typeof AdminService>;

/** AdminService over Connect with the server's bootstrap (global admin) token. */
export function adminOf(server: ServerProcess): Admin {
  return createClient(
    AdminService,
    createCofferTransport({ url: server.httpUrl, token: server.token, timeoutMs: 30_000 }),
  );
}

/** SecretService with `token`, over Connect (HTTP port) or gRPC (gRPC port). */
export function cofferSecrets(
  server: ServerProcess,
  token: string,
  protocol: "connect" | "grpc",
): CofferClient {
  return createCofferClient({
    url: protocol === "grpc" ? server.grpcUrl : server.httpUrl,
    protocol,
    token,
    timeoutMs: 30_000,
  });
}

/** A new project's id. */
export async function createProject(admin: Admin): Promise<string> {
  const { project } = await admin.createProject({ name: `compat-${randomUUID()}` });
  if (project === undefined) throw new Error("CreateProject answered no project");
  return project.id;
}

/** A new Coffer token's id and value, with one `role` on all of `projectId`. */
export async function createToken(
  admin: Admin,
  projectId: string,
  role: Role,
): Promise<{ id: string; value: string }> {
  const { token, value } = await admin.createToken({
    name: `compat-${Role[role].toLowerCase()}`,
    grants: [{ projectId, role, pathPrefix: "/" }],
  });
  if (token === undefined) throw new Error("CreateToken answered no token");
  return { id: token.id, value };
}

/** A Scaleway-style API key: what a Scaleway client is configured with. */
export interface ScalewayKey {
  /** "SCW" and 17 capital letters or digits; not secret. */
  accessKey: string;
  /** A UUID: the bearer value, sent as X-Auth-Token. */
  secretKey: string;
}

/**
 * A new Scaleway-style key (CreateToken with TOKEN_FORMAT_SCALEWAY), with
 * one `role` on all of `projectId`, and its token's id (to revoke it).
 */
export async function createScalewayKey(
  admin: Admin,
  projectId: string,
  role: Role,
): Promise<ScalewayKey & { id: string }> {
  const { token, value, accessKey } = await admin.createToken({
    name: `compat-scaleway-${Role[role].toLowerCase()}`,
    grants: [{ projectId, role, pathPrefix: "/" }],
    format: TokenFormat.SCALEWAY,
  });
  if (token === undefined) throw new Error("CreateToken answered no token");
  return { id: token.id, accessKey, secretKey: value };
}

export { Role };
