import { type Duration, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { EphemeralAction, SecretType, VersionStatus } from "@coffer/api";

/** Secret types as people name them, in the order the create form offers them. */
export const SECRET_TYPES: readonly { type: SecretType; key: string; label: string }[] = [
  { type: SecretType.OPAQUE, key: "opaque", label: "Opaque" },
  { type: SecretType.KEY_VALUE, key: "key_value", label: "Key/value" },
  { type: SecretType.BASIC_CREDENTIALS, key: "basic_credentials", label: "Basic credentials" },
  {
    type: SecretType.DATABASE_CREDENTIALS,
    key: "database_credentials",
    label: "Database credentials",
  },
  { type: SecretType.CERTIFICATE, key: "certificate", label: "Certificate" },
  { type: SecretType.SSH_KEY, key: "ssh_key", label: "SSH key" },
];

export function typeLabel(type: SecretType): string {
  return SECRET_TYPES.find((t) => t.type === type)?.label ?? "Opaque";
}

export function typeFromKey(key: string | undefined): SecretType {
  return SECRET_TYPES.find((t) => t.key === key)?.type ?? SecretType.UNSPECIFIED;
}

const VERSION_STATUS: Record<VersionStatus, string> = {
  [VersionStatus.UNSPECIFIED]: "Unknown",
  [VersionStatus.ENABLED]: "Enabled",
  [VersionStatus.DISABLED]: "Disabled",
  [VersionStatus.SCHEDULED_FOR_DELETION]: "Scheduled for deletion",
  [VersionStatus.DELETED]: "Deleted",
};

export function versionStatusLabel(status: VersionStatus): string {
  return VERSION_STATUS[status];
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});

/** A timestamp for people ("5 Dec 2026, 01:20"), or an em dash when unset. */
export function formatTime(ts: Timestamp | undefined): string {
  return ts === undefined ? "—" : dateTime.format(timestampDate(ts));
}

/** The ISO form, for a <time dateTime> attribute. */
export function isoTime(ts: Timestamp | undefined): string | undefined {
  return ts === undefined ? undefined : timestampDate(ts).toISOString();
}

/** A duration in words, largest units first ("30 days", "1 hour 30 minutes", "45 seconds"). */
export function formatDuration(d: Duration | undefined): string {
  if (d === undefined) return "—";
  let s = Number(d.seconds);
  const parts: string[] = [];
  const units: [number, string][] = [
    [86_400, "day"],
    [3_600, "hour"],
    [60, "minute"],
    [1, "second"],
  ];
  for (const [size, unit] of units) {
    if (s >= size) {
      const n = Math.floor(s / size);
      s -= n * size;
      parts.push(`${n} ${unit}${n === 1 ? "" : "s"}`);
    }
  }
  return parts.length === 0 ? "0 seconds" : parts.join(" ");
}

export function actionLabel(action: EphemeralAction): string {
  return action === EphemeralAction.DELETE ? "deleted" : "disabled";
}

/** "1 secret", "3 secrets". */
export function plural(n: number | bigint, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 || n === 1n ? one : many}`;
}

/** The folder a secret lives in, joined with its name: "/prod/db" + "password". */
export function fullPath(path: string, name: string): string {
  return path === "/" ? `/${name}` : `${path}/${name}`;
}
