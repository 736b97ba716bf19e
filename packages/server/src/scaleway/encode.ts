import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import {
  EphemeralAction,
  type EphemeralPolicy,
  type Secret,
  SecretStatus,
  SecretType,
  type SecretVersion,
  VersionStatus,
} from "@coffer/api";
import { enumNames } from "../rpc/convert.ts";

/**
 * Coffer's resources as the Scaleway Secret Manager API writes them:
 * snake_case, every field present (null when unset), RFC 3339 times,
 * protobuf-JSON durations ("1800s"), enum values by their Scaleway names.
 * The fields Coffer has no counterpart for are constant: a secret is never
 * `managed` or `used_by` a product, and its `key_id` is null (Coffer's own
 * master key ring encrypts every secret).
 */

/**
 * Scaleway's names of Coffer's enum values: the domain's names (rpc/convert.ts
 * enumNames: the proto name after its prefix, in lower case), and
 * `unknown_*` for UNSPECIFIED.
 */
function scalewayNames<E extends Record<string, string | number>>(
  what: string,
  values: E,
  unknown: string,
): (value: number) => string {
  const names = enumNames(what, values);
  return (value) => names.fromProto(value, what) ?? unknown;
}

export const typeName = scalewayNames("secret type", SecretType, "unknown_type");
const actionName = scalewayNames("ephemeral action", EphemeralAction, "unknown_action");
const versionStatusName = scalewayNames("version status", VersionStatus, "unknown_status");
const secretStatusName = scalewayNames("secret status", SecretStatus, "unknown_status");

/** RFC 3339 with microseconds, in UTC, as Scaleway writes times; null when unset. */
export function time(t: Timestamp | undefined): string | null {
  if (t === undefined) return null;
  const ms = Number(t.seconds) * 1000;
  const micros = String(Math.floor(t.nanos / 1000)).padStart(6, "0");
  return `${new Date(ms).toISOString().slice(0, 19)}.${micros}Z`;
}

/** A protobuf-JSON duration: "1800s", or "1.500s" with a fraction. */
export function duration(d: Duration | undefined): string | null {
  if (d === undefined) return null;
  if (d.nanos === 0) return `${d.seconds}s`;
  const fraction = String(d.nanos)
    .padStart(9, "0")
    .replace(/(?:000)+$/, "");
  return `${d.seconds}.${fraction}s`;
}

function policy(p: EphemeralPolicy | undefined) {
  if (p === undefined) return null;
  return {
    time_to_live: duration(p.timeToLive),
    expires_once_accessed: p.expiresOnceAccessed,
    action: actionName(p.action),
  };
}

export function secret(s: Secret) {
  return {
    id: s.id,
    project_id: s.projectId,
    name: s.name,
    status: secretStatusName(s.status),
    created_at: time(s.createdAt),
    updated_at: time(s.updatedAt),
    tags: s.tags,
    version_count: s.versionCount,
    description: s.description,
    managed: false,
    protected: s.protected,
    type: typeName(s.type),
    path: s.path,
    ephemeral_policy: policy(s.ephemeralPolicy),
    used_by: [],
    deletion_requested_at: time(s.deletionRequestedAt),
    key_id: null,
    region: s.region,
  };
}

/** A version in `region` (Coffer's version message does not repeat its secret's region). */
export function version(v: SecretVersion, region: string) {
  const p = v.ephemeralProperties;
  return {
    revision: v.revision,
    secret_id: v.secretId,
    status: versionStatusName(v.status),
    created_at: time(v.createdAt),
    updated_at: time(v.updatedAt),
    deleted_at: time(v.deletedAt),
    description: v.description,
    latest: v.latest,
    ephemeral_properties:
      p === undefined
        ? null
        : {
            expires_at: time(p.expiresAt),
            expires_once_accessed: p.expiresOnceAccessed,
            action: actionName(p.action),
          },
    deletion_requested_at: time(v.deletionRequestedAt),
    region,
  };
}

/** A browse item's secret, as Scaleway's BrowseSecretsResponse.Item.SecretDetails. */
export function browsedSecret(s: Secret) {
  return {
    id: s.id,
    tags: s.tags,
    version_count: s.versionCount,
    protected: s.protected,
    ephemeral_policy: policy(s.ephemeralPolicy),
    type: typeName(s.type),
  };
}

/** The payload of an access: base64 `data`, its CRC-32 (IEEE) and the secret's type. */
export function payload(r: {
  secretId: string;
  revision: number;
  data: Uint8Array;
  dataCrc32: number;
  type: SecretType;
}) {
  return {
    secret_id: r.secretId,
    revision: r.revision,
    data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength).toString("base64"),
    data_crc32: r.dataCrc32,
    type: typeName(r.type),
  };
}
