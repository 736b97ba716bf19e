import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AuditEventSchema,
  type ClaimCondition,
  type Grant,
  type GrantSchema,
  type IdentityBinding,
  type IdentityBindingSchema,
  type ProjectSchema,
  Role,
  TokenFormat,
  type TokenSchema,
  type TrustedIssuer,
  type TrustedIssuerSchema,
  type UpdateTrustedIssuerRequest,
} from "@coffer/api";
import type {
  AuditRow,
  IdentityBindingRow,
  ProjectRow,
  StoredCondition,
  StoredGrant,
  TrustedIssuerRow,
} from "../db/schema.ts";
import type { CreateBindingInput } from "../domain/admin/bindings.ts";
import type {
  CreateIssuerInput,
  IssuerKeysInput,
  UpdateIssuerInput,
} from "../domain/admin/issuers.ts";
import type {
  TokenFormat as DomainTokenFormat,
  GrantInput,
  TokenView,
} from "../domain/admin/tokens.ts";
import type { Role as DomainRole } from "../domain/caller.ts";
import { durationToMs, enumNames, optionalTimestamp } from "./convert.ts";

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

export function grantsFromProto(grants: readonly Grant[], field = "grants"): GrantInput[] {
  return grants.map((g, i) => ({
    projectId: g.projectId,
    role: roleFromProto(g.role, `${field}[${i}].role`),
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
    bindingId: t.bindingId ?? "",
    issuer: t.issuer ?? "",
    subject: t.subject ?? "",
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
    issuer: e.issuer ?? "",
    subject: e.subject ?? "",
    bindingId: e.bindingId ?? "",
    reason: e.reason ?? "",
  };
}

/** A CreateTrustedIssuer request's issuer, as the domain takes it (id, created_at, created_by ignored). */
export function issuerFromProto(i: TrustedIssuer | undefined): CreateIssuerInput {
  return {
    name: i?.name ?? "",
    issuerUrl: i?.issuerUrl ?? "",
    audiences: i?.audiences ?? [],
    keys: keysFromProto(i?.keys),
  };
}

function keysFromProto(keys: TrustedIssuer["keys"] | undefined): IssuerKeysInput {
  return keys?.case === "discovery"
    ? { discovery: keys.value }
    : keys?.case === "jwksUrl"
      ? { jwksUrl: keys.value }
      : keys?.case === "staticJwks"
        ? { staticJwks: keys.value }
        : undefined;
}

/** An UpdateTrustedIssuer request, as the domain takes it: what is unset stays. */
export function issuerUpdateFromProto(r: UpdateTrustedIssuerRequest): UpdateIssuerInput {
  return {
    issuerId: r.issuerId,
    name: r.name,
    audiences: r.audiences?.audiences,
    keys: keysFromProto(r.keys),
  };
}

export function issuerToProto(i: TrustedIssuerRow): MessageInitShape<typeof TrustedIssuerSchema> {
  return {
    id: i.id,
    name: i.name,
    issuerUrl: i.issuerUrl,
    audiences: i.audiences,
    keys:
      i.keySource === "discovery"
        ? { case: "discovery", value: true }
        : i.keySource === "jwks_url"
          ? { case: "jwksUrl", value: i.jwksUrl ?? "" }
          : { case: "staticJwks", value: JSON.stringify(i.staticJwks) },
    createdAt: timestampFromDate(i.createdAt),
    createdBy: i.createdBy ?? "",
  };
}

function conditionFromProto(c: ClaimCondition): StoredCondition {
  return { claim: c.claim, value: c.value, glob: c.glob };
}

/** A CreateIdentityBinding request's binding (id, created_at, created_by ignored). */
export function bindingFromProto(b: IdentityBinding | undefined): CreateBindingInput {
  return {
    name: b?.name ?? "",
    issuerId: b?.issuerId ?? "",
    conditions: (b?.conditions ?? []).map(conditionFromProto),
    grants: grantsFromProto(b?.grants ?? [], "binding.grants"),
    ...(b?.tokenTtl && { tokenTtlMs: durationToMs(b.tokenTtl, "binding.token_ttl") }),
  };
}

export function bindingToProto(
  b: IdentityBindingRow,
): MessageInitShape<typeof IdentityBindingSchema> {
  return {
    id: b.id,
    name: b.name,
    issuerId: b.issuerId,
    conditions: b.conditions.map((c) => ({ claim: c.claim, value: c.value, glob: c.glob })),
    grants: b.grants.map(grantToProto),
    tokenTtl: durationFromMs(b.tokenTtlMs),
    createdAt: timestampFromDate(b.createdAt),
    createdBy: b.createdBy ?? "",
  };
}
