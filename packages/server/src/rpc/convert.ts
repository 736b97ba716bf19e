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
 * A proto enum's values and the domain's names for them, converted both
 * ways. The domain names a value as the proto does, in lower case
 * (`SecretType.KEY_VALUE` is "key_value"); UNSPECIFIED has no name. A value
 * the enum lacks is refused, naming the request's field; a name it lacks is
 * UNSPECIFIED.
 */
export function enumNames<E extends Record<string, string | number>>(
  what: string,
  protoEnum: E,
): {
  /** The value's name; undefined for UNSPECIFIED. */
  fromProto: (value: number, field: string) => NameOf<E> | undefined;
  toProto: (name: string | null) => E[keyof E];
} {
  const byValue = new Map<number, NameOf<E>>();
  const byName = new Map<string, E[keyof E]>();
  for (const [key, value] of Object.entries(protoEnum)) {
    // A TypeScript enum also maps each number back to its key: skip those.
    if (typeof value !== "number" || value === 0) continue;
    byValue.set(value, key.toLowerCase() as NameOf<E>);
    byName.set(key.toLowerCase(), value as E[keyof E]);
  }
  return {
    fromProto: (value, field) => {
      if (value === 0) return undefined;
      const name = byValue.get(value);
      if (name === undefined) throw invalid(field, `unknown ${what} ${value}`);
      return name;
    },
    toProto: (name) => byName.get(name ?? "") ?? (0 as E[keyof E]),
  };
}

/** The domain's names for a proto enum's values (see enumNames). */
type NameOf<E> = Lowercase<Exclude<Extract<keyof E, string>, "UNSPECIFIED">>;

const SECRET_TYPES = enumNames("secret type", SecretType);

/** A request's secret type; UNSPECIFIED is undefined (opaque on create, any in filters). */
export const kindFromType: (type: SecretType, field: string) => SecretKind | undefined =
  SECRET_TYPES.fromProto;
export const typeFromKind = SECRET_TYPES.toProto;

const ACTIONS = enumNames("ephemeral action", EphemeralAction);

/** A Duration as milliseconds, refusing negative or sub-millisecond-garbage values by name. */
export function durationToMs(d: Duration, field: string): number {
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

const VERSION_STATUSES = enumNames("version status", VersionStatus);

/** A status to filter by; UNSPECIFIED is none, and refused like an unknown one. */
export function versionStatusFromProto(s: VersionStatus, field: string): DomainVersionStatus {
  const status = VERSION_STATUSES.fromProto(s, field);
  if (status === undefined) throw invalid(field, `unknown version status ${s}`);
  return status;
}

export const versionStatusToProto = VERSION_STATUSES.toProto;

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

const ORDERS = enumNames("order", ListSecretsOrderBy);

/** A list's order; UNSPECIFIED is by name, ascending. */
export function orderFromProto(o: ListSecretsOrderBy): SecretOrder {
  return ORDERS.fromProto(o, "order_by") ?? "name_asc";
}
