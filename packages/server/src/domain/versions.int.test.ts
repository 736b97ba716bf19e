import { generateKeyPairSync } from "node:crypto";
import { crc32 } from "node:zlib";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backends } from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expectDomainError,
  expectInvalid,
  newSecret,
  query,
  textOf,
  utf8,
} from "../testing/domain-helpers.ts";
import { accessVersion, accessVersionByPath } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { etagOf } from "./etag.ts";
import type { SecretKind } from "./payload-types.ts";
import { getSecret } from "./read-secrets.ts";
import { getVersion, listVersions, type VersionStatus } from "./read-versions.ts";
import { updateVersion } from "./update-version.ts";
import {
  deleteVersion,
  destroyVersion,
  disableVersion,
  enableVersion,
  restoreVersion,
} from "./version-state.ts";

const pem = generateKeyPairSync("ec", { namedCurve: "P-256" })
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString();

describe.each(backends)("versions on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());

  const ref = (secretId: string, revision: string, etag = "") => ({
    region: "",
    secretId,
    revision,
    etag,
  });
  const access = (secretId: string, revision: string) =>
    accessVersion(domain, caller, { region: "", secretId, revision });
  const payloadOf = async (secretId: string, revision: string) =>
    textOf((await access(secretId, revision)).data);
  const get = (secretId: string, revision: string) =>
    getVersion(domain, caller, { region: "", secretId, revision });
  const revisions = async (secretId: string, statuses: VersionStatus[] = []) =>
    (
      await listVersions(domain, caller, { region: "", secretId, statuses, page: 0, pageSize: 0 })
    ).versions.map((v) => `${v.revision}:${v.status}`);
  const secretOf = (secretId: string) => getSecret(domain, caller, { region: "", secretId });

  it("numbers revisions 1, 2, 3, moves latest, and serves each payload with its checksum", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    const v2 = await addVersion(domain, secret.id, "two", { description: "second" });
    const v3 = await addVersion(domain, secret.id, "three");
    expect(v2).toMatchObject({
      revision: 2,
      status: "enabled",
      latest: true,
      description: "second",
    });
    expect(v3).toMatchObject({ revision: 3, status: "enabled", latest: true });
    // The checksum travels only with the payload (issue 11 item 3).
    expect(v3).not.toHaveProperty("dataCrc32");
    expect((await get(secret.id, "1")).latest).toBe(false);
    expect((await get(secret.id, "2")).latest).toBe(false);
    expect((await get(secret.id, "latest")).revision).toBe(3);

    for (const [revision, payload] of [
      ["1", "one"],
      ["2", "two"],
      ["3", "three"],
    ] as const) {
      const result = await access(secret.id, revision);
      expect(textOf(result.data)).toBe(payload);
      expect(result.dataCrc32).toBe(crc32(utf8(payload)));
      expect(result.revision).toBe(Number(revision));
    }

    const after = await secretOf(secret.id);
    expect(after.versionCount).toBe(3);
    expect(etagOf(after)).not.toBe(etagOf(secret));

    expect(await revisions(secret.id)).toEqual(["3:enabled", "2:enabled", "1:enabled"]);
    const page = await listVersions(domain, caller, {
      region: "",
      secretId: secret.id,
      statuses: [],
      page: 2,
      pageSize: 2,
    });
    expect(page.versions.map((v) => v.revision)).toEqual([1]);
    expect(page.totalCount).toBe(3);
  });

  it("selects latest (highest) and latest_enabled (highest enabled)", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await addVersion(domain, secret.id, "two");
    const v3 = await addVersion(domain, secret.id, "three", { enabled: false });
    expect(v3).toMatchObject({ revision: 3, status: "disabled", latest: true });

    expect((await get(secret.id, "latest")).revision).toBe(3);
    expect((await get(secret.id, "latest_enabled")).revision).toBe(2);
    await expectDomainError(
      access(secret.id, "latest"),
      "failed_precondition",
      `version 3 of secret ${secret.id} is disabled`,
    );
    expect(await payloadOf(secret.id, "latest_enabled")).toBe("two");

    await disableVersion(domain, caller, ref(secret.id, "2"));
    expect(await payloadOf(secret.id, "latest_enabled")).toBe("one");
    await deleteVersion(domain, caller, ref(secret.id, "1"));
    await expectDomainError(
      get(secret.id, "latest_enabled"),
      "not_found",
      `secret ${secret.id} has no enabled version`,
    );
    await expectDomainError(
      access(secret.id, "latest_enabled"),
      "not_found",
      "has no enabled version",
    );

    await enableVersion(domain, caller, ref(secret.id, "3"));
    expect(await payloadOf(secret.id, "latest_enabled")).toBe("three");
    expect(await payloadOf(secret.id, "latest")).toBe("three");
  });

  it("disables the previous latest enabled version when asked", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await addVersion(domain, secret.id, "two");
    const v3 = await addVersion(domain, secret.id, "three", { disablePrevious: true });
    expect(v3.status).toBe("enabled");
    expect(await revisions(secret.id)).toEqual(["3:enabled", "2:disabled", "1:enabled"]);

    // The new version need not be enabled: the previous one is disabled all the same.
    await addVersion(domain, secret.id, "four", { disablePrevious: true, enabled: false });
    expect(await revisions(secret.id)).toEqual([
      "4:disabled",
      "3:disabled",
      "2:disabled",
      "1:enabled",
    ]);
    expect(await payloadOf(secret.id, "latest_enabled")).toBe("one");

    // Nothing enabled to disable: the create still succeeds.
    const { secret: empty } = await newSecret(domain, {}, null);
    const first = await addVersion(domain, empty.id, "only", { disablePrevious: true });
    expect(first).toMatchObject({ revision: 1, status: "enabled" });
  });

  it("checks data_crc32 and stores nothing when it does not match", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    const data = utf8("two");
    await expectInvalid(
      addVersion(domain, secret.id, "two", { dataCrc32: (crc32(data) ^ 1) >>> 0 }),
      "data_crc32",
      `does not match the CRC-32 of data (computed ${crc32(data)})`,
    );
    await expectInvalid(
      addVersion(domain, secret.id, "two", { dataCrc32: -1 }),
      "data_crc32",
      "unsigned 32-bit integer",
    );
    expect(await secretOf(secret.id)).toEqual(secret);
    expect(await revisions(secret.id)).toEqual(["1:enabled"]);
    // No revision was spent on the refused requests.
    const v2 = await addVersion(domain, secret.id, "two", { dataCrc32: crc32(data) });
    expect(v2).toMatchObject({ revision: 2 });
    expect((await access(secret.id, "2")).dataCrc32).toBe(crc32(data));
  });

  it("checks each new version's payload against the secret's type", async () => {
    const cases: {
      type: SecretKind;
      valid: string;
      invalid: [payload: string | Uint8Array, field: string, rule: string][];
    }[] = [
      {
        type: "key_value",
        valid: '{"a":"x","b":2,"c":true}',
        invalid: [
          ['{"ok":"x","nested":{"k":"v"}}', "data.nested", "must be a string, number or boolean"],
          ['["a"]', "data", "must be a JSON object (got array)"],
          ["not json", "data", "must be a JSON object (invalid JSON)"],
        ],
      },
      {
        type: "basic_credentials",
        valid: '{"username":"u","password":"p"}',
        invalid: [['{"username":"u"}', "data.password", "is required (a string)"]],
      },
      {
        type: "database_credentials",
        valid:
          '{"engine":"postgres","username":"u","password":"p","host":"h","dbname":"d","port":"5432"}',
        invalid: [
          [
            '{"engine":"postgres","username":"u","password":"SECRET-VALUE","host":"h","dbname":"d","port":"70000"}',
            "data.port",
            "must be a string of digits from 0 to 65535",
          ],
          [
            '{"engine":"oracle","username":"u","password":"p","host":"h","dbname":"d","port":"1"}',
            "data.engine",
            "must be one of postgres, mysql, other",
          ],
        ],
      },
      {
        type: "certificate",
        valid: pem,
        invalid: [["SECRET-VALUE", "data", "must hold only PEM blocks"]],
      },
      {
        type: "ssh_key",
        valid: JSON.stringify({ ssh_private_key: pem }),
        invalid: [['{"ssh_private_key":"SECRET-VALUE"}', "data.ssh_private_key", "PEM blocks"]],
      },
      {
        type: "opaque",
        valid: "x".repeat(65_536),
        invalid: [
          [new Uint8Array(65_537), "data", "must be 1 to 65536 bytes (got 65537)"],
          [new Uint8Array(0), "data", "must be 1 to 65536 bytes (got 0)"],
        ],
      },
    ];
    for (const c of cases) {
      const { secret } = await newSecret(domain, { type: c.type }, c.valid);
      for (const [payload, field, rule] of c.invalid) {
        const data = typeof payload === "string" ? utf8(payload) : payload;
        const error = await expectInvalid(addVersion(domain, secret.id, "", { data }), field, rule);
        expect(error.message).not.toContain("SECRET-VALUE");
      }
      expect(await secretOf(secret.id)).toEqual(secret);
      const v2 = await addVersion(domain, secret.id, c.valid);
      expect(v2.revision).toBe(2);
      expect(await payloadOf(secret.id, "2")).toBe(c.valid);
    }
  });

  it("enables, disables, deletes and restores a version, refusing what its status forbids", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await addVersion(domain, secret.id, "two");
    const at = (revision: string) => ref(secret.id, revision);

    const disabled = await disableVersion(domain, caller, at("1"));
    expect(disabled.status).toBe("disabled");
    await expectDomainError(access(secret.id, "1"), "failed_precondition", "is disabled");
    expect((await disableVersion(domain, caller, at("1"))).status).toBe("disabled");
    expect((await enableVersion(domain, caller, at("1"))).status).toBe("enabled");
    expect(await payloadOf(secret.id, "1")).toBe("one");
    expect((await enableVersion(domain, caller, at("1"))).status).toBe("enabled");

    const scheduled = await deleteVersion(domain, caller, at("1"));
    expect(scheduled.status).toBe("scheduled_for_deletion");
    expect(scheduled.deletionRequestedAt).toBeInstanceOf(Date);
    await expectDomainError(
      access(secret.id, "1"),
      "failed_precondition",
      "is scheduled for deletion; restore it to access it",
    );
    await expectDomainError(
      deleteVersion(domain, caller, at("1")),
      "failed_precondition",
      "already scheduled for deletion",
    );
    await expectDomainError(
      enableVersion(domain, caller, at("1")),
      "failed_precondition",
      "cannot be enabled; restore it first",
    );
    await expectDomainError(
      disableVersion(domain, caller, at("1")),
      "failed_precondition",
      "cannot be disabled; restore it first",
    );
    await expectDomainError(
      restoreVersion(domain, caller, at("2")),
      "failed_precondition",
      "not scheduled for deletion",
    );
    // Hidden from the default listing, shown when asked for.
    expect(await revisions(secret.id)).toEqual(["2:enabled"]);
    expect(await revisions(secret.id, ["scheduled_for_deletion"])).toEqual([
      "1:scheduled_for_deletion",
    ]);
    // Still a version of the secret until the sweeper destroys it.
    expect((await secretOf(secret.id)).versionCount).toBe(2);

    const restored = await restoreVersion(domain, caller, at("1"));
    expect(restored).toMatchObject({ status: "disabled", deletionRequestedAt: null });
    await expectDomainError(access(secret.id, "1"), "failed_precondition", "is disabled");
    await enableVersion(domain, caller, at("1"));
    expect(await payloadOf(secret.id, "1")).toBe("one");
  });

  it("destroys a version's payload at once for an admin, with a watch event; refuses other roles", async () => {
    const { secret } = await newSecret(domain, {}, "leaked");
    await addVersion(domain, secret.id, "two");
    await deleteVersion(domain, caller, ref(secret.id, "2"));
    const before = etagOf(await secretOf(secret.id));
    const destroyed = await destroyVersion(domain, caller, ref(secret.id, "1"));
    expect(destroyed).toMatchObject({ revision: 1, status: "deleted" });
    // A version scheduled for deletion is destroyed at once too.
    expect(await destroyVersion(domain, caller, ref(secret.id, "2"))).toMatchObject({
      status: "deleted",
    });
    expect(await revisions(secret.id, ["deleted"])).toEqual(["2:deleted", "1:deleted"]);
    const rows = await query<{
      revision: number;
      key_id: unknown;
      wrapped_key: unknown;
      ciphertext: unknown;
    }>(
      dbs.db(),
      sql`select revision, key_id, wrapped_key, ciphertext from secret_versions where secret_id = ${secret.id} order by revision`,
    );
    expect(rows).toEqual([
      { revision: 1, key_id: null, wrapped_key: null, ciphertext: null },
      { revision: 2, key_id: null, wrapped_key: null, ciphertext: null },
    ]);
    expect(etagOf(await secretOf(secret.id))).not.toBe(before);
    await expectDomainError(access(secret.id, "1"), "failed_precondition");
    await expectDomainError(
      restoreVersion(domain, caller, ref(secret.id, "2")),
      "failed_precondition",
    );
    const events = await query<{ kind: string; revision: number }>(
      dbs.db(),
      sql`select kind, revision from watch_events where secret_id = ${secret.id} and kind = 'version_destroyed' order by revision`,
    );
    expect(events.map((e) => e.revision)).toEqual([1, 2]);
    // Destroyed is final: again, it changes nothing.
    expect(await destroyVersion(domain, caller, ref(secret.id, "1"))).toMatchObject({
      status: "deleted",
    });

    // full_access writes and reads payloads, but may not skip the restore window.
    const { secret: other } = await newSecret(domain, {}, "kept");
    const writer = {
      ...caller,
      principal: {
        tokenId: "w",
        grants: [{ projectId: other.projectId, role: "full_access" as const, pathPrefix: "/" }],
      },
    };
    await expectDomainError(
      destroyVersion(domain, writer, ref(other.id, "1")),
      "permission_denied",
    );
    expect(await payloadOf(other.id, "1")).toBe("kept");
  });

  it("refuses a stale etag on every version change, with nothing changed", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    await addVersion(domain, secret.id, "two", { enabled: false });
    await deleteVersion(domain, caller, ref(secret.id, "1"));
    const current = await secretOf(secret.id);
    const stale = etagOf(secret);
    const before = await revisions(secret.id, ["enabled", "disabled", "scheduled_for_deletion"]);

    await expectDomainError(
      addVersion(domain, secret.id, "three", { etag: stale }),
      "aborted",
      `etag ${stale} is stale`,
    );
    await expectDomainError(enableVersion(domain, caller, ref(secret.id, "2", stale)), "aborted");
    await expectDomainError(disableVersion(domain, caller, ref(secret.id, "2", stale)), "aborted");
    await expectDomainError(deleteVersion(domain, caller, ref(secret.id, "2", stale)), "aborted");
    await expectDomainError(restoreVersion(domain, caller, ref(secret.id, "1", stale)), "aborted");
    await expectDomainError(
      updateVersion(domain, caller, { ...ref(secret.id, "2", stale), description: "x" }),
      "aborted",
    );
    expect(await secretOf(secret.id)).toEqual(current);
    expect(await revisions(secret.id, ["enabled", "disabled", "scheduled_for_deletion"])).toEqual(
      before,
    );

    // With the current etag each change goes through and moves the etag on.
    const enabled = await enableVersion(domain, caller, ref(secret.id, "2", etagOf(current)));
    expect(enabled.status).toBe("enabled");
    const next = await secretOf(secret.id);
    expect(etagOf(next)).not.toBe(etagOf(current));
    const v3 = await addVersion(domain, secret.id, "three", { etag: etagOf(next) });
    expect(v3.revision).toBe(3);
  });

  it("updates a version's description", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    const updated = await updateVersion(domain, caller, {
      ...ref(secret.id, "latest"),
      description: "rotated by ops",
    });
    expect(updated).toMatchObject({
      revision: 1,
      description: "rotated by ops",
      status: "enabled",
    });
    expect((await get(secret.id, "1")).description).toBe("rotated by ops");
    await expectInvalid(
      updateVersion(domain, caller, { ...ref(secret.id, "1"), description: "x".repeat(1025) }),
      "description",
      "at most 1024",
    );
    await expectInvalid(
      addVersion(domain, secret.id, "two", { description: "y".repeat(1025) }),
      "description",
      "at most 1024",
    );
    expect((await get(secret.id, "1")).description).toBe("rotated by ops");
  });

  it("refuses malformed revisions and answers not_found for missing ones", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    for (const revision of ["0", "01", "-1", "abc", "2147483648", ""]) {
      await expectInvalid(get(secret.id, revision), "revision");
      await expectInvalid(access(secret.id, revision), "revision");
    }
    await expectDomainError(
      get(secret.id, "7"),
      "not_found",
      `version 7 of secret ${secret.id} not found`,
    );
    await expectDomainError(access(secret.id, "7"), "not_found", "version 7");
    await expectDomainError(
      enableVersion(domain, caller, ref(secret.id, "7")),
      "not_found",
      "version 7",
    );
  });

  it("gives concurrent creates distinct, consecutive revisions", async () => {
    const { secret } = await newSecret(domain, {}, "one");
    const created = await Promise.all(
      Array.from({ length: 10 }, (_, i) => addVersion(domain, secret.id, `payload ${i}`)),
    );
    expect(created.map((v) => v.revision).sort((a, b) => a - b)).toEqual([
      2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    ]);
    for (const v of created) {
      const payload = await access(secret.id, String(v.revision));
      expect(payload.dataCrc32).toBe(crc32(payload.data));
    }
    expect((await secretOf(secret.id)).versionCount).toBe(11);
    expect((await get(secret.id, "latest")).revision).toBe(11);
  });

  it("serves versions by project, path and name", async () => {
    const { secret } = await newSecret(domain, { path: "/svc/api" }, "one");
    await addVersion(domain, secret.id, "two");
    const byPath = (path: string, name: string, revision: string) =>
      accessVersionByPath(domain, caller, {
        region: "",
        projectId: secret.projectId,
        path,
        name,
        revision,
      });
    expect(textOf((await byPath("/svc/api/", secret.name, "latest")).data)).toBe("two");
    const first = await byPath("/svc/api", secret.name, "1");
    expect(textOf(first.data)).toBe("one");
    expect(first.secretId).toBe(secret.id);
    await expectDomainError(
      byPath("/svc", secret.name, "1"),
      "not_found",
      `secret "${secret.name}" not found at path "/svc"`,
    );
    await expectInvalid(byPath("svc", secret.name, "1"), "path");
    await expectInvalid(byPath("/svc/api", "a b", "1"), "name");
  });
});
