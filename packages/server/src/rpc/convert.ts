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

/**
 * A proto enum and the domain's names for its values, converted both ways: a
 * value the table lacks is refused, naming the request's field; a name it
 * lacks is UNSPECIFIED (0).
 */
export function enumNames<P extends number, D>(
  what: string,
  names: Record<P, D>,
): { fromProto: (value: P, field: string) => D; toProto: (name: string | null) => P } {
  const byName = new Map<unknown, P>(
    Object.entries(names).map(([value, name]) => [name, Number(value) as P]),
  );
  return {
    fromProto: (value, field) => {
      if (!Object.hasOwn(names, value)) throw invalid(field, `unknown ${what} ${value}`);
      return names[value];
    },
    toProto: (name) => byName.get(name) ?? (0 as P),
  };
}

const SECRET_TYPES = enumNames<SecretType, SecretKind | undefined>("secret type", {
  [SecretType.UNSPECIFIED]: undefined,
  [SecretType.OPAQUE]: "opaque",
  [SecretType.CERTIFICATE]: "certificate",
  [SecretType.KEY_VALUE]: "key_value",
  [SecretType.BASIC_CREDENTIALS]: "basic_credentials",
  [SecretType.DATABASE_CREDENTIALS]: "database_credentials",
  [SecretType.SSH_KEY]: "ssh_key",
});

/** A request's secret type; UNSPECIFIED is undefined (opaque on create, any in filters). */
export const kindFromType = SECRET_TYPES.fromProto;
export const typeFromKind = SECRET_TYPES.toProto;

const ACTIONS = enumNames<EphemeralAction, DomainAction | undefined>("ephemeral action", {
  [EphemeralAction.UNSPECIFIED]: undefined,
  [EphemeralAction.DISABLE]: "disable",
  [EphemeralAction.DELETE]: "delete",
});

/** A Duration as milliseconds, refusing negative or sub-millisecond-garbage values by name. */
function durationToMs(d: Duration, field: string): number {
  if (d.seconds < 0n || d.nanos < 0 || d.nanos > 999_999_999) {
    throw invalid(field, "must be a positive duration");
  }
  return durationMs(d);
}

/**
 * What an ephemeral policy and a version's ephemeral properties both say:
 * whether one access consumes, and the action on expiry (unset: left to the
 * domain), from the request's `message`.
 */
function onceAndAction(
  p: { expiresOnceAccessed: boolean; action: EphemeralAction },
  message: string,
): { expiresOnceAccessed: boolean; action?: DomainAction } {
  const action = ACTIONS.fromProto(p.action, `${message}.action`);
  return { expiresOnceAccessed: p.expiresOnceAccessed, ...(action && { action }) };
}

export function policyFromProto(p: EphemeralPolicy | undefined): EphemeralPolicyInput | undefined {
  if (p === undefined) return undefined;
  const limits = onceAndAction(p, "ephemeral_policy");
  return {
    ...(p.timeToLive && { ttlMs: durationToMs(p.timeToLive, "ephemeral_policy.time_to_live") }),
    ...limits,
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
  const limits = onceAndAction(p, "ephemeral_properties");
  return {
    ...(p.expiresAt && {
      expiresAt: timestampFromProto(p.expiresAt, "ephemeral_properties.expires_at"),
    }),
    ...limits,
  };
}

/** The paging fields of a list's answer. */
export function pageToProto(page: { totalCount: number; nextPageToken: string }): {
  totalCount: bigint;
  nextPageToken: string;
} {
  return { totalCount: BigInt(page.totalCount), nextPageToken: page.nextPageToken };
}

/** A nullable time as an optional Timestamp. */
export const optionalTimestamp = (d: Date | null): Timestamp | undefined =>
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
        action: ACTIONS.toProto(s.ephemeralAction),
      },
    }),
    status: s.deletionRequestedAt === null ? SecretStatus.READY : SecretStatus.LOCKED,
    versionCount: s.versionCount,
    createdAt: timestampFromDate(s.createdAt),
    updatedAt: timestampFromDate(s.updatedAt),
    deletionRequestedAt: optionalTimestamp(s.deletionRequestedAt),
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
        expiresAt: optionalTimestamp(v.expiresAt),
        expiresOnceAccessed: v.expiresOnceAccessed ?? false,
        action: ACTIONS.toProto(v.ephemeralAction),
      },
    }),
    createdAt: timestampFromDate(v.createdAt),
    updatedAt: timestampFromDate(v.updatedAt),
    deletionRequestedAt: optionalTimestamp(v.deletionRequestedAt),
    deletedAt: optionalTimestamp(v.deletedAt),
    // data_crc32 is never set here: the checksum travels only with the
    // payload (AccessSecretVersion), since it reveals a short payload.
  };
}

const ORDERS = enumNames<ListSecretsOrderBy, SecretOrder>("order", {
  [ListSecretsOrderBy.UNSPECIFIED]: "name_asc",
  [ListSecretsOrderBy.NAME_ASC]: "name_asc",
  [ListSecretsOrderBy.NAME_DESC]: "name_desc",
  [ListSecretsOrderBy.CREATED_AT_ASC]: "created_at_asc",
  [ListSecretsOrderBy.CREATED_AT_DESC]: "created_at_desc",
  [ListSecretsOrderBy.UPDATED_AT_ASC]: "updated_at_asc",
  [ListSecretsOrderBy.UPDATED_AT_DESC]: "updated_at_desc",
});

export function orderFromProto(o: ListSecretsOrderBy): SecretOrder {
  return ORDERS.fromProto(o, "order_by");
}
