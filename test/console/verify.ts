import {
  type CofferClient,
  EphemeralAction,
  type Secret,
  SecretType,
  VersionStatus,
} from "@coffer/client";
import { expect } from "vitest";
import { type Case, type Kind, payloadOf } from "./cases.ts";

/**
 * Checks over the gRPC port, with a plain client, that what the clicks of a
 * {@link Case} created is exactly what was asked.
 */

export const SECRET_TYPE: Record<Kind, SecretType> = {
  opaque: SecretType.OPAQUE,
  certificate: SecretType.CERTIFICATE,
  key_value: SecretType.KEY_VALUE,
  basic_credentials: SecretType.BASIC_CREDENTIALS,
  database_credentials: SecretType.DATABASE_CREDENTIALS,
  ssh_key: SecretType.SSH_KEY,
};

/** The one secret named `name` in folder `path`; fails when there is not exactly one. */
export async function findSecret(
  client: CofferClient,
  where: { region: string; projectId: string; path: string; name: string },
): Promise<Secret> {
  const { secrets } = await client.listSecrets({
    region: where.region,
    projectId: where.projectId,
    path: where.path,
    name: where.name,
  });
  expect(secrets, `secrets named ${where.name} in ${where.path}`).toHaveLength(1);
  return secrets[0] as Secret;
}

/**
 * The secret of `c`, its two versions and their payloads, as the server
 * holds them. Reading a payload consumes a single-access version and a
 * disabled one is enabled first to read it: call it last.
 */
export async function verifyCase(
  client: CofferClient,
  c: Case,
  where: { region: string; projectId: string },
): Promise<void> {
  const secret = await findSecret(client, { ...where, path: c.path, name: c.name });
  expect({
    region: secret.region,
    projectId: secret.projectId,
    type: SecretType[secret.type],
    path: secret.path,
    name: secret.name,
    tags: secret.tags,
    protected: secret.protected,
    versionCount: secret.versionCount,
  }).toEqual({
    region: where.region,
    projectId: where.projectId,
    type: SecretType[SECRET_TYPE[c.kind]],
    path: c.path,
    name: c.name,
    tags: [...c.tags].sort(),
    protected: c.protected,
    versionCount: 2,
  });

  const policy = secret.ephemeralPolicy;
  if (c.ephemeral === undefined) {
    expect(policy, "no ephemeral policy").toBeUndefined();
  } else if ("singleAccess" in c.ephemeral) {
    expect(policy?.expiresOnceAccessed).toBe(true);
    expect(policy?.timeToLive).toBeUndefined();
  } else {
    const unitSeconds = c.ephemeral.ttl.unit === "days" ? 86_400 : 3_600;
    expect(policy?.expiresOnceAccessed).toBe(false);
    expect(Number(policy?.timeToLive?.seconds)).toBe(c.ephemeral.ttl.amount * unitSeconds);
  }
  if (policy !== undefined) {
    expect([EphemeralAction.UNSPECIFIED, EphemeralAction.DISABLE]).toContain(policy.action);
  }

  const { versions } = await client.listSecretVersions({
    region: where.region,
    secretId: secret.id,
  });
  const byRevision = new Map(versions.map((v) => [v.revision, v]));
  expect([...byRevision.keys()].sort()).toEqual([1, 2]);
  const first = byRevision.get(1);
  const second = byRevision.get(2);
  expect(VersionStatus[first?.status ?? 0]).toBe("ENABLED");
  expect(VersionStatus[second?.status ?? 0]).toBe(c.secondEnabled ? "ENABLED" : "DISABLED");
  expect(first?.latest).toBe(false);
  expect(second?.latest).toBe(true);
  for (const v of versions) {
    if (c.ephemeral === undefined) {
      expect(v.ephemeralProperties).toBeUndefined();
    } else if ("singleAccess" in c.ephemeral) {
      expect(v.ephemeralProperties?.expiresOnceAccessed).toBe(true);
    } else if (v.status === VersionStatus.ENABLED) {
      const unitMs = c.ephemeral.ttl.unit === "days" ? 86_400_000 : 3_600_000;
      const created = Number(v.createdAt?.seconds) * 1000;
      const expires = Number(v.ephemeralProperties?.expiresAt?.seconds) * 1000;
      expect(Math.abs(expires - created - c.ephemeral.ttl.amount * unitMs)).toBeLessThan(60_000);
    }
  }

  for (const [revision, value] of [
    [1, c.first],
    [2, c.second],
  ] as const) {
    if (byRevision.get(revision)?.status === VersionStatus.DISABLED) {
      await client.enableSecretVersion({
        region: where.region,
        secretId: secret.id,
        revision: String(revision),
      });
    }
    const read = await client.accessSecretVersion({
      region: where.region,
      secretId: secret.id,
      revision: String(revision),
    });
    expect(Buffer.from(read.data).equals(payloadOf(value)), `payload of revision ${revision}`).toBe(
      true,
    );
  }
}
