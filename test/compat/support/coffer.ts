import { randomUUID } from "node:crypto";
import {
  AdminService,
  type CofferClient,
  createCofferClient,
  createCofferTransport,
  Role,
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

/** A new token's id and value, with one `role` on `projectId` (all of it, or below `pathPrefix`). */
export async function createToken(
  admin: Admin,
  projectId: string,
  role: Role,
  pathPrefix = "/",
): Promise<{ id: string; value: string }> {
  const { token, value } = await admin.createToken({
    name: `compat-${Role[role].toLowerCase()}`,
    grants: [{ projectId, role, pathPrefix }],
  });
  if (token === undefined) throw new Error("CreateToken answered no token");
  return { id: token.id, value };
}

export { Role };
