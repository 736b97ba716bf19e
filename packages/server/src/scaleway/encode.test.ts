import { create } from "@bufbuild/protobuf";
import {
  EphemeralAction,
  SecretSchema,
  SecretStatus,
  SecretType,
  SecretVersionSchema,
  VersionStatus,
} from "@coffer/api";
import { describe, expect, it } from "vitest";
import { parseDuration, parseTimestamp } from "./decode.ts";
import { browsedSecret, duration, payload, secret, time, typeName, version } from "./encode.ts";

/**
 * Coffer's resources as Scaleway's JSON: the recorded answers of
 * api.scaleway.com (the reference's cassettes) have every field present,
 * nulls explicit, times with microseconds and durations as "1800s".
 */

const at = (iso: string) => parseTimestamp(iso, "t");

describe("times", () => {
  it("writes RFC 3339 in UTC with exactly six fraction digits", () => {
    expect(time(at("2026-07-03T15:27:54.805853Z"))).toBe("2026-07-03T15:27:54.805853Z");
    expect(time(at("2026-07-03T15:27:54Z"))).toBe("2026-07-03T15:27:54.000000Z");
    expect(time(at("2026-07-03T17:27:54.000001+02:00"))).toBe("2026-07-03T15:27:54.000001Z");
    // Nanoseconds below the microsecond are cut, not rounded up into the next one.
    expect(time(at("2026-07-03T15:27:54.999999999Z"))).toBe("2026-07-03T15:27:54.999999Z");
  });

  it("writes an unset time as null", () => {
    expect(time(undefined)).toBeNull();
  });
});

describe("durations", () => {
  it.each([
    ["1800s", "1800s"],
    // The Go SDK sends nine zeros; Scaleway echoes the duration without them.
    ["1800.000000000s", "1800s"],
    ["1.5s", "1.500s"],
    ["0.000001s", "0.000001s"],
    ["2.000000007s", "2.000000007s"],
  ])("writes %s as %s, which reads back the same", (given, written) => {
    const d = parseDuration(given, "ttl");
    expect(duration(d)).toBe(written);
    expect(parseDuration(written, "ttl")).toEqual(d);
  });

  it("writes an unset duration as null", () => {
    expect(duration(undefined)).toBeNull();
  });
});

const SECRET_FIELDS = [
  "id",
  "project_id",
  "name",
  "status",
  "created_at",
  "updated_at",
  "tags",
  "version_count",
  "description",
  "managed",
  "protected",
  "type",
  "path",
  "ephemeral_policy",
  "used_by",
  "deletion_requested_at",
  "key_id",
  "region",
].sort();

describe("a secret", () => {
  const base = {
    id: "6f6e4a56-0000-4000-8000-000000000001",
    projectId: "0f8fad5b-d9cb-469f-a165-70867728950e",
    name: "db",
    path: "/prod",
    status: SecretStatus.READY,
    type: SecretType.DATABASE_CREDENTIALS,
    tags: ["a", "b"],
    versionCount: 2,
    description: "",
    protected: true,
    region: "fr-par",
    createdAt: at("2026-07-03T15:27:54.805853Z"),
    updatedAt: at("2026-07-03T15:27:55.000001Z"),
  };

  it("has every documented field, with explicit nulls where unset", () => {
    const json = secret(create(SecretSchema, base));
    expect(Object.keys(json).sort()).toEqual(SECRET_FIELDS);
    expect(json).toEqual({
      id: base.id,
      project_id: base.projectId,
      name: "db",
      status: "ready",
      created_at: "2026-07-03T15:27:54.805853Z",
      updated_at: "2026-07-03T15:27:55.000001Z",
      tags: ["a", "b"],
      version_count: 2,
      description: "",
      managed: false,
      protected: true,
      type: "database_credentials",
      path: "/prod",
      ephemeral_policy: null,
      used_by: [],
      deletion_requested_at: null,
      key_id: null,
      region: "fr-par",
    });
    // What JSON.stringify writes: the nulls are there, not dropped.
    expect(JSON.stringify(json)).toContain('"ephemeral_policy":null');
    expect(JSON.stringify(json)).toContain('"key_id":null');
  });

  it("writes an ephemeral policy and a deletion request", () => {
    const json = secret(
      create(SecretSchema, {
        ...base,
        status: SecretStatus.LOCKED,
        ephemeralPolicy: {
          timeToLive: parseDuration("1800.000000000s", "ttl"),
          expiresOnceAccessed: true,
          action: EphemeralAction.DISABLE,
        },
        deletionRequestedAt: at("2026-07-04T00:00:00Z"),
      }),
    );
    expect(json.status).toBe("locked");
    expect(json.ephemeral_policy).toEqual({
      time_to_live: "1800s",
      expires_once_accessed: true,
      action: "disable",
    });
    expect(json.deletion_requested_at).toBe("2026-07-04T00:00:00.000000Z");
  });

  it("writes a policy without a time to live with a null one", () => {
    const json = secret(
      create(SecretSchema, {
        ...base,
        ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DELETE },
      }),
    );
    expect(json.ephemeral_policy).toEqual({
      time_to_live: null,
      expires_once_accessed: true,
      action: "delete",
    });
  });

  it("writes unspecified enums as Scaleway's unknown_* values", () => {
    const json = secret(create(SecretSchema, { ...base, status: 0, type: 0 }));
    expect([json.status, json.type]).toEqual(["unknown_status", "unknown_type"]);
  });

  it("names every secret type as Scaleway does", () => {
    const names = Object.values(SecretType)
      .filter((v): v is SecretType => typeof v === "number")
      .map(typeName);
    expect(names.sort()).toEqual(
      [
        "unknown_type",
        "opaque",
        "certificate",
        "key_value",
        "basic_credentials",
        "database_credentials",
        "ssh_key",
      ].sort(),
    );
  });

  it("writes a browse item's secret with its details only", () => {
    const json = browsedSecret(create(SecretSchema, base));
    expect(json).toEqual({
      id: base.id,
      tags: ["a", "b"],
      version_count: 2,
      protected: true,
      ephemeral_policy: null,
      type: "database_credentials",
    });
  });
});

describe("a version", () => {
  const base = {
    revision: 3,
    secretId: "6f6e4a56-0000-4000-8000-000000000001",
    status: VersionStatus.ENABLED,
    description: "",
    latest: true,
    createdAt: at("2026-07-03T15:27:54.805853Z"),
    updatedAt: at("2026-07-03T15:27:54.805853Z"),
  };

  it("has every documented field, in the route's region, with explicit nulls", () => {
    const json = version(create(SecretVersionSchema, base), "nl-ams");
    expect(json).toEqual({
      revision: 3,
      secret_id: base.secretId,
      status: "enabled",
      created_at: "2026-07-03T15:27:54.805853Z",
      updated_at: "2026-07-03T15:27:54.805853Z",
      deleted_at: null,
      description: "",
      latest: true,
      ephemeral_properties: null,
      deletion_requested_at: null,
      region: "nl-ams",
    });
  });

  it("writes its ephemeral properties and every status by Scaleway's name", () => {
    const json = version(
      create(SecretVersionSchema, {
        ...base,
        status: VersionStatus.SCHEDULED_FOR_DELETION,
        ephemeralProperties: {
          expiresAt: at("2026-07-03T16:00:00.5Z"),
          expiresOnceAccessed: false,
          action: EphemeralAction.DELETE,
        },
      }),
      "fr-par",
    );
    expect(json.status).toBe("scheduled_for_deletion");
    expect(json.ephemeral_properties).toEqual({
      expires_at: "2026-07-03T16:00:00.500000Z",
      expires_once_accessed: false,
      action: "delete",
    });
    const statuses = [
      VersionStatus.ENABLED,
      VersionStatus.DISABLED,
      VersionStatus.DELETED,
      VersionStatus.SCHEDULED_FOR_DELETION,
      0 as VersionStatus,
    ].map((status) => version(create(SecretVersionSchema, { ...base, status }), "x").status);
    expect(statuses).toEqual([
      "enabled",
      "disabled",
      "deleted",
      "scheduled_for_deletion",
      "unknown_status",
    ]);
  });
});

describe("a payload", () => {
  it("is standard base64 of exactly its bytes, with its checksum and the secret's type", () => {
    // A view into a larger buffer: only its own bytes are encoded.
    const whole = new Uint8Array([0, 0xfb, 0xff, 0xbf, 0x61, 0]);
    const json = payload({
      secretId: "s",
      revision: 1,
      data: whole.subarray(1, 5),
      dataCrc32: 123,
      type: SecretType.OPAQUE,
    });
    expect(json).toEqual({
      secret_id: "s",
      revision: 1,
      data: "+/+/YQ==",
      data_crc32: 123,
      type: "opaque",
    });
  });
});
