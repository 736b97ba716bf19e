import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type Duration,
  durationFromMs,
  durationMs,
  type Timestamp,
  timestampDate,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";
import {
  EphemeralAction,
  type EphemeralPolicy,
  type EphemeralProperties,
  ListSecretsOrderBy,
  type SecretSchema,
  SecretStatus,
  SecretType,
  type SecretVersionSchema,
  VersionStatus,
} from "@coffer/api";
import type { SecretOrder, SecretView } from "../db/secrets.ts";
import type {
  EphemeralAction as DomainAction,
  EphemeralPolicyInput,
} from "../domain/ephemeral-policy.ts";
import { invalid } from "../domain/errors.ts";
import { etagOf } from "../domain/etag.ts";
import type { SecretKind } from "../domain/payload-types.ts";
import type { VersionStatus as DomainVersionStatus, VersionView } from "../domain/read-versions.ts";

const KIND_OF_TYPE: Record<SecretType, SecretKind | undefined> = {
  [SecretType.UNSPECIFIED]: undefined,
  [SecretType.OPAQUE]: "opaque",
  [SecretType.CERTIFICATE]: "certificate",
  [SecretType.KEY_VALUE]: "key_value",
  [SecretType.BASIC_CREDENTIALS]: "basic_credentials",
  [SecretType.DATABASE_CREDENTIALS]: "database_credentials",
  [SecretType.SSH_KEY]: "ssh_key",
};

const TYPE_OF_KIND = Object.fromEntries(
  Object.entries(KIND_OF_TYPE)
    .filter(([, kind]) => kind !== undefined)
    .map(([type, kind]) => [kind, Number(type) as SecretType]),
) as Record<SecretKind, SecretType>;

/** A request's secret type; UNSPECIFIED is undefined (opaque on create, any in filters). */
export function kindFromType(type: SecretType, field = "type"): SecretKind | undefined {
  if (!(type in KIND_OF_TYPE)) throw invalid(field, `unknown secret type ${type}`);
  return KIND_OF_TYPE[type];
}

export function typeFromKind(kind: string): SecretType {
  return TYPE_OF_KIND[kind as SecretKind] ?? SecretType.UNSPECIFIED;
}

function actionFromProto(action: EphemeralAction, field: string): DomainAction | undefined {
  switch (action) {
    case EphemeralAction.UNSPECIFIED:
      return undefined;
    case EphemeralAction.DISABLE:
      return "disable";
    case EphemeralAction.DELETE:
      return "delete";
    default:
      throw invalid(field, `unknown ephemeral action ${action}`);
  }
}

function actionToProto(action: string | null): EphemeralAction {
  if (action === "delete") return EphemeralAction.DELETE;
  if (action === "disable") return EphemeralAction.DISABLE;
  return EphemeralAction.UNSPECIFIED;
}

/** A Duration as milliseconds, refusing negative or sub-millisecond-garbage values by name. */
function durationToMs(d: Duration, field: string): number {
  if (d.seconds < 0n || d.nanos < 0 || d.nanos > 999_999_999) {
    throw invalid(field, "must be a positive duration");
  }
  return durationMs(d);
}

export function policyFromProto(p: EphemeralPolicy | undefined): EphemeralPolicyInput | undefined {
  if (p === undefined) return undefined;
  const action = actionFromProto(p.action, "ephemeral_policy.action");
  return {
    ...(p.timeToLive && {
      ttlMs: durationToMs(p.timeToLive, "ephemeral_policy.time_to_live"),
    }),
    expiresOnceAccessed: p.expiresOnceAccessed,
    ...(action && { action }),
  };
}

/**
 * A request's Timestamp as a Date, refusing by name what protobuf's rules
 * forbid: `nanos` outside 0..999,999,999 (timestampDate would silently carry
 * -1 or 1.5e9 into the seconds), or seconds that make no valid time.
 */
export function timestampFromProto(t: Timestamp, field: string): Date {
  if (!Number.isInteger(t.nanos) || t.nanos < 0 || t.nanos > 999_999_999) {
    throw invalid(field, `nanos must be between 0 and 999999999 (got ${t.nanos})`);
  }
  const at = timestampDate(t);
  if (!Number.isFinite(at.getTime())) throw invalid(field, "must be a valid time");
  return at;
}

export function propertiesFromProto(p: EphemeralProperties | undefined) {
  if (p === undefined) return undefined;
  const action = actionFromProto(p.action, "ephemeral_properties.action");
  return {
    ...(p.expiresAt && {
      expiresAt: timestampFromProto(p.expiresAt, "ephemeral_properties.expires_at"),
    }),
    expiresOnceAccessed: p.expiresOnceAccessed,
    ...(action && { action }),
  };
}

const ts = (d: Date | null): Timestamp | undefined =>
  d === null ? undefined : timestampFromDate(d);

export function secretToProto(s: SecretView): MessageInitShape<typeof SecretSchema> {
  return {
    id: s.id,
    projectId: s.projectId,
    region: s.region,
    name: s.name,
    path: s.path,
    type: typeFromKind(s.type),
    description: s.description,
    tags: s.tags,
    protected: s.protected,
    ...(s.ephemeralAction !== null && {
      ephemeralPolicy: {
        ...(s.ttlMs !== null && { timeToLive: durationFromMs(s.ttlMs) }),
        expiresOnceAccessed: s.expiresOnceAccessed ?? false,
        action: actionToProto(s.ephemeralAction),
      },
    }),
    status: s.deletionRequestedAt === null ? SecretStatus.READY : SecretStatus.LOCKED,
    versionCount: s.versionCount,
    createdAt: timestampFromDate(s.createdAt),
    updatedAt: timestampFromDate(s.updatedAt),
    deletionRequestedAt: ts(s.deletionRequestedAt),
    etag: etagOf(s),
  };
}

const VERSION_STATUS: Record<string, VersionStatus> = {
  enabled: VersionStatus.ENABLED,
  disabled: VersionStatus.DISABLED,
  scheduled_for_deletion: VersionStatus.SCHEDULED_FOR_DELETION,
  deleted: VersionStatus.DELETED,
};

export function versionStatusFromProto(s: VersionStatus, field: string): DomainVersionStatus {
  const found = Object.entries(VERSION_STATUS).find(([, v]) => v === s);
  if (found === undefined) throw invalid(field, `unknown version status ${s}`);
  return found[0] as DomainVersionStatus;
}

export function versionStatusToProto(s: string): VersionStatus {
  return VERSION_STATUS[s] ?? VersionStatus.UNSPECIFIED;
}

export function versionToProto(v: VersionView): MessageInitShape<typeof SecretVersionSchema> {
  return {
    secretId: v.secretId,
    revision: v.revision,
    status: versionStatusToProto(v.status),
    description: v.description,
    latest: v.latest,
    ...(v.ephemeralAction !== null && {
      ephemeralProperties: {
        expiresAt: ts(v.expiresAt),
        expiresOnceAccessed: v.expiresOnceAccessed ?? false,
        action: actionToProto(v.ephemeralAction),
      },
    }),
    createdAt: timestampFromDate(v.createdAt),
    updatedAt: timestampFromDate(v.updatedAt),
    deletionRequestedAt: ts(v.deletionRequestedAt),
    deletedAt: ts(v.deletedAt),
    // data_crc32 is never set here: the checksum travels only with the
    // payload (AccessSecretVersion), since it reveals a short payload.
  };
}

const ORDER: Record<ListSecretsOrderBy, SecretOrder> = {
  [ListSecretsOrderBy.UNSPECIFIED]: "name_asc",
  [ListSecretsOrderBy.NAME_ASC]: "name_asc",
  [ListSecretsOrderBy.NAME_DESC]: "name_desc",
  [ListSecretsOrderBy.CREATED_AT_ASC]: "created_at_asc",
  [ListSecretsOrderBy.CREATED_AT_DESC]: "created_at_desc",
  [ListSecretsOrderBy.UPDATED_AT_ASC]: "updated_at_asc",
  [ListSecretsOrderBy.UPDATED_AT_DESC]: "updated_at_desc",
};

export function orderFromProto(o: ListSecretsOrderBy): SecretOrder {
  const order = ORDER[o];
  if (order === undefined) throw invalid("order_by", `unknown order ${o}`);
  return order;
}
