import type { CallAudit } from "./audit.ts";

/** A role granted on a project (see proto coffer.admin.v1.Role). */
export type Role = "admin" | "full_access" | "secret_write" | "read_only" | "secret_access";

/** One role on one project (empty project: a global admin), narrowed to a path. */
export interface Grant {
  projectId: string;
  role: Role;
  /** "/" for the whole project. */
  pathPrefix: string;
}

/** The authenticated principal of a call. */
export interface Principal {
  tokenId: string;
  grants: readonly Grant[];
  /** When the token expires; absent: never (a long stream ends then). */
  expiresAt?: Date;
}

/**
 * Who is calling. Every domain function takes one: the call chain fills in
 * the request id, the peer, the authenticated principal (its token and
 * grants) and the call's audit record.
 */
export interface Caller {
  requestId: string;
  peer?: string;
  /** Undefined only when no token was presented; domain calls then refuse. */
  principal?: Principal;
  audit?: CallAudit;
}
