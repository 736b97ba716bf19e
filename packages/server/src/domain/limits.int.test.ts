import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backends, testDomain } from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expectDomainError,
  newSecret,
  query,
} from "../testing/domain-helpers.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret, restoreSecret } from "./delete-secret.ts";
import { DomainError } from "./errors.ts";
import { listVersions } from "./read-versions.ts";
import { sweepRegion } from "./sweeper.ts";
import { deleteVersion } from "./version-state.ts";

const SECRETS = 5;
const VERSIONS = 3;

describe.each(backends)("quotas on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    await dbs.open();
    domain = testDomain(
      { "test-region": dbs.database() },
      { limits: { secretsPerProject: SECRETS, versionsPerSecret: VERSIONS } },
    );
  });
  afterAll(() => dbs.close());

  /** Each test its own project, so that counts never leak between tests. */
  const inProject = (projectId: string) => ({ projectId });
  const liveSecrets = async (projectId: string) =>
    (
      await query<{ n: number }>(
        dbs.db(),
        sql`select count(*)::int as n from secrets where project_id = ${projectId} and deletion_requested_at is null`,
      )
    )[0]?.n;

  describe("secrets per project", () => {
    it("allows the limit, refuses one more naming the setting, and counts per project", async () => {
      const project = randomUUID();
      for (let i = 0; i < SECRETS; i++) await newSecret(domain, inProject(project));
      const error = await expectDomainError(
        newSecret(domain, inProject(project)),
        "resource_exhausted",
      );
      expect(error.message).toBe(
        `project ${project} has reached its limit of ${SECRETS} secrets in region test-region (COFFER_MAX_SECRETS_PER_PROJECT); delete secrets or raise the limit`,
      );
      expect(await liveSecrets(project)).toBe(SECRETS);
      // Another project has its own allowance.
      await newSecret(domain, inProject(randomUUID()));
    });

    it("frees a slot when a secret is deleted, and refuses to restore it past the limit", async () => {
      const project = randomUUID();
      const created = [];
      for (let i = 0; i < SECRETS; i++) created.push(await newSecret(domain, inProject(project)));
      const first = created[0]?.secret;
      if (first === undefined) throw new Error("no secret");
      await deleteSecret(domain, caller, { region: "", secretId: first.id, etag: "" });
      await newSecret(domain, inProject(project));
      await expectDomainError(
        restoreSecret(domain, caller, { region: "", secretId: first.id }),
        "resource_exhausted",
        "COFFER_MAX_SECRETS_PER_PROJECT",
      );
      expect(await liveSecrets(project)).toBe(SECRETS);
    });

    it("lets exactly the limit through among 20 concurrent creates", async () => {
      const project = randomUUID();
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, () => newSecret(domain, inProject(project))),
      );
      const created = results.filter((r) => r.status === "fulfilled");
      const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
      expect(created).toHaveLength(SECRETS);
      expect(refused).toHaveLength(20 - SECRETS);
      for (const reason of refused) {
        expect(reason).toBeInstanceOf(DomainError);
        expect((reason as DomainError).kind).toBe("resource_exhausted");
      }
      expect(await liveSecrets(project)).toBe(SECRETS);
    });
  });

  describe("versions per secret", () => {
    const kept = async (secretId: string) =>
      (
        await listVersions(domain, caller, {
          region: "",
          secretId,
          statuses: [],
          page: 0,
          pageSize: 0,
        })
      ).versions
        .filter((v) => v.status !== "deleted")
        .map((v) => v.revision);

    it("allows the limit, refuses one more naming the setting and how to free one", async () => {
      const { secret } = await newSecret(domain, inProject(randomUUID()), "v1");
      for (let i = 2; i <= VERSIONS; i++) await addVersion(domain, secret.id, `v${i}`);
      const error = await expectDomainError(
        addVersion(domain, secret.id, "one too many"),
        "resource_exhausted",
      );
      expect(error.message).toMatch(
        `secret ${secret.id} has reached its limit of ${VERSIONS} versions (COFFER_MAX_VERSIONS_PER_SECRET); delete old versions`,
      );
      expect(await kept(secret.id)).toEqual([3, 2, 1]);
    });

    it("counts a version scheduled for deletion until its payload is destroyed", async () => {
      const { secret } = await newSecret(domain, inProject(randomUUID()), "v1");
      for (let i = 2; i <= VERSIONS; i++) await addVersion(domain, secret.id, `v${i}`);
      await deleteVersion(domain, caller, {
        region: "",
        secretId: secret.id,
        revision: "1",
        etag: "",
      });
      await expectDomainError(
        addVersion(domain, secret.id, "still full"),
        "resource_exhausted",
        "COFFER_MAX_VERSIONS_PER_SECRET",
      );
      // The sweeper, with a zero window, destroys revision 1: its slot is free.
      await sweepRegion(dbs.db(), 0);
      const added = await addVersion(domain, secret.id, "v4");
      expect(added.revision).toBe(4);
      expect(await kept(secret.id)).toEqual([4, 3, 2]);
    });

    it("lets exactly the limit through among 20 concurrent adds", async () => {
      const { secret } = await newSecret(domain, inProject(randomUUID()), "v1");
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => addVersion(domain, secret.id, `c${i}`)),
      );
      const added = results.filter((r) => r.status === "fulfilled");
      const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
      expect(added).toHaveLength(VERSIONS - 1);
      for (const reason of refused) {
        expect((reason as DomainError).kind).toBe("resource_exhausted");
      }
      expect(await kept(secret.id)).toHaveLength(VERSIONS);
    });
  });
});
