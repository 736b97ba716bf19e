import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AuditEventSchema,
  type Grant,
  type GrantSchema,
  type ProjectSchema,
  Role,
  TokenFormat,
  type TokenSchema,
} from "@coffer/api";
import type { AuditRow, ProjectRow, StoredGrant } from "../db/schema.ts";
import type {
  TokenFormat as DomainTokenFormat,
  GrantInput,
  TokenView,
} from "../domain/admin/tokens.ts";
import type { Role as DomainRole } from "../domain/caller.ts";
import { enumNames, optionalTimestamp } from "./convert.ts";

const ROLES = enumNames("role", Role);

/** A request's role as the domain names it; UNSPECIFIED is "" (the domain says it is required). */
export function roleFromProto(role: Role, field: string): DomainRole | "" {
  return ROLES.fromProto(role, field) ?? "";
}

export const roleToProto = ROLES.toProto;

const TOKEN_FORMATS = enumNames("token format", TokenFormat);

/** A request's token format; UNSPECIFIED is Coffer's own. */
export function tokenFormatFromProto(format: TokenFormat, field: string): DomainTokenFormat {
  return TOKEN_FORMATS.fromProto(format, field) ?? "coffer";
}

export function grantsFromProto(grants: readonly Grant[]): GrantInput[] {
  return grants.map((g, i) => ({
    projectId: g.projectId,
    role: roleFromProto(g.role, `grants[${i}].role`),
    pathPrefix: g.pathPrefix,
  }));
}

export function grantToProto(g: StoredGrant): MessageInitShape<typeof GrantSchema> {
  return { projectId: g.projectId, role: roleToProto(g.role), pathPrefix: g.pathPrefix };
}

export function projectToProto(p: ProjectRow): MessageInitShape<typeof ProjectSchema> {
  return { id: p.id, name: p.name, createdAt: timestampFromDate(p.createdAt) };
}

/** A token as listed: its display prefix, never its value or hash. */
export function tokenToProto(t: TokenView): MessageInitShape<typeof TokenSchema> {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    grants: t.grants.map(grantToProto),
    createdAt: timestampFromDate(t.createdAt),
    expiresAt: optionalTimestamp(t.expiresAt),
    revokedAt: optionalTimestamp(t.revokedAt),
    createdBy: t.createdBy ?? "",
    accessKey: t.accessKey ?? "",
  };
}

export function auditEventToProto(
  e: AuditRow & { region: string },
): MessageInitShape<typeof AuditEventSchema> {
  return {
    id: e.id,
    time: timestampFromDate(e.time),
    tokenId: e.tokenId ?? "",
    projectId: e.projectId ?? "",
    method: e.method,
    secretId: e.secretId ?? "",
    secretPath: e.secretPath ?? "",
    secretName: e.secretName ?? "",
    revision: e.revision ?? 0,
    outcome: e.outcome,
    requestId: e.requestId,
    peer: e.peer ?? "",
    region: e.region,
    count: e.count,
    tokenPrefix: e.tokenPrefix ?? "",
    targetTokenId: e.targetTokenId ?? "",
  };
}
