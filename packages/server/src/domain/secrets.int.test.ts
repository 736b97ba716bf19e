import { randomUUID } from "node:crypto";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  backends,
  ensureProjects,
  OTHER_PROJECT,
  PROJECT,
  testDomain,
} from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expectDomainError,
  expectInvalid,
  newSecret,
  secretInput,
  textOf,
  unique,
  utf8,
} from "../testing/domain-helpers.ts";
import { accessVersion, accessVersionByPath } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { createSecret } from "./create-secret.ts";
import { deleteSecret, restoreSecret } from "./delete-secret.ts";
import { etagOf } from "./etag.ts";
import {
  browseSecrets,
  getSecret,
  type ListSecretsInput,
  listSecrets,
  listSecretTypes,
  listTags,
} from "./read-secrets.ts";
import { getVersion, listVersions } from "./read-versions.ts";
import { setProtection, updateSecret } from "./update-secret.ts";
import { deleteVersion, disableVersion } from "./version-state.ts";

/** Lists a project's secrets in the default region, names only, with the total. */
async function names(
  domain: DomainDeps,
  projectId: string,
  filter: Partial<ListSecretsInput> = {},
): Promise<{ names: string[]; total: number }> {
  const { secrets, totalCount } = await listSecrets(domain, caller, {
    region: "",
    projectId,
    tags: [],
    orderBy: "name_asc",
    page: 0,
    pageSize: 0,
    ...filter,
  });
  return { names: secrets.map((s) => s.name), total: totalCount };
}

describe.each(backends)("secrets on $name", (backend) => {
  // Two regions, eu-a (the default) and eu-b, one database each; the region
  // tests also serve both regions from eu-a's database alone, where only the
  // region column keeps them apart.
  const dbs = databasesFor(backend, ["eu-a", "eu-b"]);
  let domain: DomainDeps;
  let sharedDomain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
    const euA = dbs.database("eu-a");
    sharedDomain = testDomain({ "eu-a": euA, "eu-b": euA });
  });
  afterAll(() => dbs.close());

  it("creates a secret with an enabled first version, normalised fields, and reads it back", async () => {
    const payload = utf8('{"user":"app","retries":3,"debug":false}');
    const { secret, firstVersion } = await createSecret(domain, caller, {
      ...secretInput(),
      projectId: PROJECT.toUpperCase(),
      path: "/apps/web/",
      type: "key_value",
      description: "the web app's settings",
      tags: ["prod", "web", "prod"],
      firstVersion: { data: payload, dataCrc32: crc32(payload), description: "v1" },
    });
    expect(secret).toMatchObject({
      projectId: PROJECT,
      region: "eu-a",
      path: "/apps/web",
      type: "key_value",
      description: "the web app's settings",
      tags: ["prod", "web"],
      protected: false,
      versionCount: 1,
      deletionRequestedAt: null,
      ephemeralAction: null,
    });
    expect(firstVersion).toMatchObject({
      revision: 1,
      status: "enabled",
      latest: true,
      description: "v1",
    });
    expect(firstVersion).not.toHaveProperty("dataCrc32");
    expect(await getSecret(domain, caller, { region: "", secretId: secret.id })).toEqual(secret);
    const access = await accessVersion(domain, caller, {
      region: "eu-a",
      secretId: secret.id,
      revision: "latest",
    });
    expect(textOf(access.data)).toBe(textOf(payload));
    expect(access).toMatchObject({ revision: 1, dataCrc32: crc32(payload), type: "key_value" });
  });

  it("creates a secret without a version: no version to read or access", async () => {
    const { secret, firstVersion } = await newSecret(domain, {}, null);
    expect(firstVersion).toBeUndefined();
    expect(secret.versionCount).toBe(0);
    expect(secret.path).toBe("/");
    expect(secret.type).toBe("opaque");
    await expectDomainError(
      getVersion(domain, caller, { region: "", secretId: secret.id, revision: "latest" }),
      "not_found",
      "version latest",
    );
    await expectDomainError(
      accessVersion(domain, caller, {
        region: "",
        secretId: secret.id,
        revision: "latest_enabled",
      }),
      "not_found",
      "has no enabled version",
    );
  });

  it("refuses bad fields through createSecret, naming the field, and stores nothing", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    const create = (overrides: Parameters<typeof secretInput>[0]) =>
      createSecret(domain, caller, secretInput({ projectId, ...overrides }));
    await expectInvalid(create({ name: "a/b" }), "name", '"/"');
    await expectInvalid(create({ name: ".." }), "name", 'must not be "." or ".."');
    await expectInvalid(create({ path: "apps" }), "path", 'must start with "/"');
    await expectInvalid(create({ path: "/a//b" }), "path", "empty segments");
    await expectInvalid(
      create({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }),
      "tags",
      "at most 64",
    );
    await expectInvalid(create({ tags: ["ok", "bad\nline"] }), "tags[1]", "control character");
    await expectInvalid(create({ description: "x".repeat(1025) }), "description", "at most 1024");
    await expectInvalid(create({ projectId: "not-a-uuid" }), "project_id", "must be a UUID");
    expect(await names(domain, projectId)).toEqual({ names: [], total: 0 });
  });

  it("refuses a first version that breaks its type, size or checksum, and stores nothing", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    const name = unique();
    const create = (type: "opaque" | "basic_credentials", data: Uint8Array, dataCrc32?: number) =>
      createSecret(
        domain,
        caller,
        secretInput({
          projectId,
          name,
          type,
          firstVersion: { data, description: "", ...(dataCrc32 !== undefined && { dataCrc32 }) },
        }),
      );
    const error = await expectInvalid(
      create("basic_credentials", utf8('{"username":"app","pasword":"hunter2"}')),
      "first_version.data.password",
      "is required (a string)",
    );
    expect(error.message).not.toContain("hunter2");
    await expectInvalid(
      create("opaque", new Uint8Array(65_537)),
      "first_version.data",
      "must be 1 to 65536 bytes (got 65537)",
    );
    await expectInvalid(create("opaque", new Uint8Array(0)), "first_version.data", "1 to 65536");
    const data = utf8("payload");
    await expectInvalid(
      create("opaque", data, (crc32(data) + 1) >>> 0),
      "first_version.data_crc32",
      `does not match the CRC-32 of data (computed ${crc32(data)})`,
    );
    expect(await names(domain, projectId)).toEqual({ names: [], total: 0 });
    // The name was never taken.
    const { secret } = await create("opaque", new Uint8Array(65_536), undefined);
    expect(secret.versionCount).toBe(1);
  });

  it("keeps (project, region, path, name) unique among live secrets", async () => {
    const name = unique();
    await newSecret(domain, { name, path: "/team" });
    await expectDomainError(
      newSecret(domain, { name, path: "/team/" }),
      "already_exists",
      `"${name}"`,
      '"/team"',
    );
    // Another path or another project is another address.
    await newSecret(domain, { name, path: "/team/other" });
    await newSecret(domain, { name, path: "/team", projectId: OTHER_PROJECT });
    expect((await names(domain, PROJECT, { name, path: "/team" })).total).toBe(1);
  });

  it("lets exactly one of ten concurrent creates of one name succeed", async () => {
    const name = unique();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => newSecret(domain, { name })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect(r.reason).toMatchObject({ kind: "already_exists" });
    }
    expect((await names(domain, PROJECT, { name })).total).toBe(1);
  });

  it("frees a name when its secret is scheduled for deletion; restoring over a new owner conflicts", async () => {
    const name = unique();
    const { secret: first } = await newSecret(domain, { name });
    await deleteSecret(domain, caller, { region: "", secretId: first.id, etag: "" });
    const { secret: second } = await newSecret(domain, { name });
    await expectDomainError(
      restoreSecret(domain, caller, { region: "", secretId: first.id }),
      "already_exists",
      `cannot restore secret ${first.id}`,
    );
    const still = await getSecret(domain, caller, { region: "", secretId: first.id });
    expect(still.deletionRequestedAt).not.toBeNull();
    expect(await names(domain, PROJECT, { name })).toEqual({ names: [name], total: 1 });
    expect(
      (await listSecrets(domain, caller, { ...listAll(), name })).secrets.map((s) => s.id),
    ).toEqual([second.id]);

    await deleteSecret(domain, caller, { region: "", secretId: second.id, etag: "" });
    const restored = await restoreSecret(domain, caller, { region: "", secretId: first.id });
    expect(restored.deletionRequestedAt).toBeNull();
    const live = await listSecrets(domain, caller, { ...listAll(), name });
    expect(live.secrets.map((s) => s.id)).toEqual([first.id]);
  });

  it("renames or moves a secret only to a free address, changing nothing otherwise", async () => {
    const { secret: taken } = await newSecret(domain, { path: "/moves" });
    const { secret } = await newSecret(domain, { path: "/moves/elsewhere" });
    await expectDomainError(
      updateSecret(domain, caller, {
        region: "",
        secretId: secret.id,
        name: taken.name,
        path: "/moves/",
        etag: etagOf(secret),
      }),
      "already_exists",
      "already has this name",
    );
    expect(await getSecret(domain, caller, { region: "", secretId: secret.id })).toEqual(secret);
    await expectInvalid(
      updateSecret(domain, caller, { region: "", secretId: secret.id, name: "", etag: "" }),
      "name",
      "is required",
    );
    await expectInvalid(
      updateSecret(domain, caller, { region: "", secretId: secret.id, tags: [" "], etag: "" }),
      "tags[0]",
      "not only whitespace",
    );
    expect(await getSecret(domain, caller, { region: "", secretId: secret.id })).toEqual(secret);
  });

  it("updates metadata and the etag; a stale etag is aborted with nothing changed", async () => {
    const { secret } = await newSecret(domain, { description: "before", tags: ["old"] });
    const newName = unique("renamed");
    const updated = await updateSecret(domain, caller, {
      region: "",
      secretId: secret.id,
      name: newName,
      path: "/renamed/",
      description: "after",
      tags: ["new", "new", "fresh"],
      etag: etagOf(secret),
    });
    expect(updated).toMatchObject({
      name: newName,
      path: "/renamed",
      description: "after",
      tags: ["fresh", "new"],
      type: "opaque",
      versionCount: 1,
    });
    expect(etagOf(updated)).not.toBe(etagOf(secret));
    expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(secret.updatedAt.getTime());

    const stale = etagOf(secret);
    const base = { region: "", secretId: secret.id, etag: stale };
    await expectDomainError(
      updateSecret(domain, caller, { ...base, description: "lost update" }),
      "aborted",
      `etag ${stale} is stale`,
      "read it again",
    );
    await expectDomainError(deleteSecret(domain, caller, base), "aborted", "stale");
    await expectDomainError(
      setProtection(domain, caller, { ...base, protected: true }),
      "aborted",
      "stale",
    );
    await expectDomainError(addVersion(domain, secret.id, "lost", { etag: stale }), "aborted");
    expect(await getSecret(domain, caller, { region: "", secretId: secret.id })).toEqual(updated);

    // The current etag works, and an empty one means "no check".
    const described = await updateSecret(domain, caller, {
      ...base,
      etag: etagOf(updated),
      description: "again",
    });
    expect(described.description).toBe("again");
    const noCheck = await updateSecret(domain, caller, { ...base, etag: "", description: "free" });
    expect(noCheck.description).toBe("free");
  });

  it("refuses every change to a secret scheduled for deletion until it is restored", async () => {
    const { secret } = await newSecret(domain);
    await deleteSecret(domain, caller, { region: "", secretId: secret.id, etag: "" });
    const ref = { region: "", secretId: secret.id, etag: "" };
    const scheduled = "is scheduled for deletion and cannot change";
    await expectDomainError(
      updateSecret(domain, caller, { ...ref, description: "x" }),
      "failed_precondition",
      scheduled,
    );
    await expectDomainError(addVersion(domain, secret.id, "x"), "failed_precondition", scheduled);
    await expectDomainError(
      setProtection(domain, caller, { ...ref, protected: true }),
      "failed_precondition",
      scheduled,
    );
    await expectDomainError(deleteSecret(domain, caller, ref), "failed_precondition", scheduled);
    await expectDomainError(
      disableVersion(domain, caller, { ...ref, revision: "1" }),
      "failed_precondition",
      scheduled,
    );
    await restoreSecret(domain, caller, { region: "", secretId: secret.id });
    expect((await addVersion(domain, secret.id, "after restore")).revision).toBe(2);
  });

  it("refuses to delete a protected secret, which still manages its versions", async () => {
    const { secret } = await newSecret(domain);
    const ref = { region: "", secretId: secret.id, etag: "" };
    const protectedSecret = await setProtection(domain, caller, { ...ref, protected: true });
    expect(protectedSecret.protected).toBe(true);
    expect(etagOf(protectedSecret)).not.toBe(etagOf(secret));
    await expectDomainError(
      deleteSecret(domain, caller, ref),
      "failed_precondition",
      "secret is protected",
    );
    expect(
      (await getSecret(domain, caller, { region: "", secretId: secret.id })).deletionRequestedAt,
    ).toBeNull();
    expect((await names(domain, PROJECT, { name: secret.name })).total).toBe(1);

    const v2 = await addVersion(domain, secret.id, "second");
    expect(v2.revision).toBe(2);
    expect((await disableVersion(domain, caller, { ...ref, revision: "1" })).status).toBe(
      "disabled",
    );
    expect((await deleteVersion(domain, caller, { ...ref, revision: "1" })).status).toBe(
      "scheduled_for_deletion",
    );

    const unprotected = await setProtection(domain, caller, { ...ref, protected: false });
    expect(unprotected.protected).toBe(false);
    const deleted = await deleteSecret(domain, caller, ref);
    expect(deleted?.deletionRequestedAt).toBeInstanceOf(Date);
  });

  it("hides a secret scheduled for deletion from lists unless asked, and refuses access", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    const { secret: keep } = await newSecret(domain, { projectId, tags: ["kept"], path: "/f" });
    const { secret } = await newSecret(
      domain,
      { projectId, tags: ["gone"], path: "/f/sub", type: "basic_credentials" },
      '{"username":"u","password":"p"}',
    );
    const deleted = await deleteSecret(domain, caller, {
      region: "",
      secretId: secret.id,
      etag: etagOf(secret),
    });
    expect(deleted?.deletionRequestedAt).toBeInstanceOf(Date);
    expect(deleted?.id).toBe(secret.id);
    // Still readable by id, marked.
    const read = await getSecret(domain, caller, { region: "", secretId: secret.id });
    expect(read.deletionRequestedAt).toEqual(deleted?.deletionRequestedAt);

    expect(await names(domain, projectId)).toEqual({ names: [keep.name], total: 1 });
    expect(await names(domain, projectId, { scheduledForDeletion: true })).toEqual({
      names: [secret.name],
      total: 1,
    });
    const browse = await browseSecrets(domain, caller, {
      region: "",
      projectId,
      prefix: "/f",
      page: 0,
      pageSize: 0,
    });
    expect(browse.items.map((i) => i.name)).toEqual([keep.name]);
    expect(
      (await listTags(domain, caller, { region: "", projectId, page: 0, pageSize: 0 })).tags,
    ).toEqual(["kept"]);
    expect(
      (await listSecretTypes(domain, caller, { region: "", projectId, page: 0, pageSize: 0 }))
        .types,
    ).toEqual(["opaque"]);

    await expectDomainError(
      accessVersion(domain, caller, { region: "", secretId: secret.id, revision: "1" }),
      "failed_precondition",
      "scheduled for deletion and cannot be accessed",
    );

    // No project named: a token whose grants name one project reads that
    // one; a global admin (every project) must name it.
    const oneProject: typeof caller = {
      ...caller,
      principal: {
        tokenId: randomUUID(),
        grants: [{ projectId, role: "read_only", pathPrefix: "" }],
      },
    };
    const unnamed = { region: "", projectId: "", page: 0, pageSize: 0 };
    expect(
      (await browseSecrets(domain, oneProject, { ...unnamed, prefix: "/f" })).items.map(
        (i) => i.name,
      ),
    ).toEqual([keep.name]);
    expect((await listTags(domain, oneProject, unnamed)).tags).toEqual(["kept"]);
    await expectInvalid(browseSecrets(domain, caller, { ...unnamed, prefix: "/f" }), "project_id");
    await expectDomainError(
      accessVersionByPath(domain, caller, {
        region: "",
        projectId,
        path: "/f/sub",
        name: secret.name,
        revision: "1",
      }),
      "not_found",
    );

    await expectDomainError(
      restoreSecret(domain, caller, { region: "", secretId: keep.id }),
      "failed_precondition",
      "is not scheduled for deletion",
    );
    await restoreSecret(domain, caller, { region: "", secretId: secret.id });
    expect((await names(domain, projectId)).total).toBe(2);
    const byPath = await accessVersionByPath(domain, caller, {
      region: "",
      projectId,
      path: "/f/sub/",
      name: secret.name,
      revision: "latest_enabled",
    });
    expect(textOf(byPath.data)).toBe('{"username":"u","password":"p"}');
  });

  it("answers not_found for a secret that does not exist", async () => {
    const missing = randomUUID();
    const ref = { region: "", secretId: missing, etag: "" };
    await expectDomainError(getSecret(domain, caller, ref), "not_found", missing);
    await expectDomainError(
      updateSecret(domain, caller, { ...ref, description: "x" }),
      "not_found",
      missing,
    );
    await expectDomainError(deleteSecret(domain, caller, ref), "not_found", missing);
    await expectDomainError(restoreSecret(domain, caller, ref), "not_found", missing);
    await expectDomainError(
      setProtection(domain, caller, { ...ref, protected: true }),
      "not_found",
      missing,
    );
    await expectInvalid(
      getSecret(domain, caller, { region: "", secretId: "123" }),
      "secret_id",
      "must be a UUID",
    );
  });

  it("lists with filters, orders, pages and a total count", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    const make = async (
      name: string,
      overrides: Parameters<typeof secretInput>[0] = {},
      payload: string | null = null,
    ) => (await newSecret(domain, { projectId, name, ...overrides }, payload)).secret;
    const alpha = await make("alpha", { path: "/apps", tags: ["x", "y"] });
    await make("beta", { path: "/apps/web", tags: ["x"], type: "key_value", protected: true });
    await make("gamma", {
      path: "/apps2",
      tags: ["y"],
      ephemeralPolicy: { ttlMs: 3_600_000, expiresOnceAccessed: false },
    });
    await make("delta", { type: "basic_credentials" });
    await make("epsilon", { path: "/apps" });
    await newSecret(domain, { projectId: OTHER_PROJECT, name: "alpha", path: "/apps" });
    const all = ["alpha", "beta", "delta", "epsilon", "gamma"];

    expect(await names(domain, projectId)).toEqual({ names: all, total: 5 });
    expect(await names(domain, projectId, { name: "alpha" })).toEqual({
      names: ["alpha"],
      total: 1,
    });
    expect((await names(domain, projectId, { path: "/apps/" })).names).toEqual([
      "alpha",
      "epsilon",
    ]);
    // Recursive, and "/apps" does not take in "/apps2".
    expect((await names(domain, projectId, { pathPrefix: "/apps" })).names).toEqual([
      "alpha",
      "beta",
      "epsilon",
    ]);
    expect((await names(domain, projectId, { pathPrefix: "/" })).names).toEqual(all);
    expect((await names(domain, projectId, { tags: ["x"] })).names).toEqual(["alpha", "beta"]);
    expect((await names(domain, projectId, { tags: ["y", "x", "x"] })).names).toEqual(["alpha"]);
    expect((await names(domain, projectId, { type: "key_value" })).names).toEqual(["beta"]);
    expect((await names(domain, projectId, { ephemeral: true })).names).toEqual(["gamma"]);
    expect((await names(domain, projectId, { ephemeral: false })).total).toBe(4);
    expect((await names(domain, projectId, { protected: true })).names).toEqual(["beta"]);
    expect((await names(domain, projectId, { protected: false })).total).toBe(4);

    expect((await names(domain, projectId, { orderBy: "name_desc" })).names).toEqual(
      [...all].reverse(),
    );
    const created = ["alpha", "beta", "gamma", "delta", "epsilon"];
    expect((await names(domain, projectId, { orderBy: "created_at_asc" })).names).toEqual(created);
    expect((await names(domain, projectId, { orderBy: "created_at_desc" })).names).toEqual(
      [...created].reverse(),
    );
    await updateSecret(domain, caller, {
      region: "",
      secretId: alpha.id,
      description: "touched",
      etag: "",
    });
    expect((await names(domain, projectId, { orderBy: "updated_at_desc" })).names[0]).toBe("alpha");
    expect((await names(domain, projectId, { orderBy: "updated_at_asc" })).names[4]).toBe("alpha");

    const page = (n: number) => names(domain, projectId, { page: n, pageSize: 2 });
    expect(await page(1)).toEqual({ names: ["alpha", "beta"], total: 5 });
    expect(await page(2)).toEqual({ names: ["delta", "epsilon"], total: 5 });
    expect(await page(3)).toEqual({ names: ["gamma"], total: 5 });
    expect(await page(4)).toEqual({ names: [], total: 5 });
    expect(await names(domain, projectId, { page: 0, pageSize: 2 })).toEqual(await page(1));

    await expectInvalid(
      names(domain, projectId, { path: "/apps", pathPrefix: "/apps" }),
      "path_prefix",
      "cannot be combined with path",
    );
    await expectInvalid(names(domain, projectId, { pageSize: 1001 }), "page_size", "1 to 1000");
    await expectInvalid(names(domain, projectId, { page: -1 }), "page");
    await expectInvalid(names(domain, projectId, { pathPrefix: "apps" }), "path_prefix");
  });

  it("browses the folders and secrets directly under a path, with counts", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    const at = (path: string, name: string) => newSecret(domain, { projectId, path, name }, null);
    await at("/", "root-secret");
    await at("/a", "x1");
    await at("/a", "x2");
    await at("/a/b", "y1");
    await at("/a/b/c", "z1");
    await at("/ab", "w1");
    const { secret: gone } = await at("/a/b", "gone");
    await deleteSecret(domain, caller, { region: "", secretId: gone.id, etag: "" });
    await newSecret(domain, { projectId: OTHER_PROJECT, path: "/elsewhere" }, null);

    const browse = async (prefix: string, page = 0, pageSize = 0) => {
      const r = await browseSecrets(domain, caller, {
        region: "",
        projectId,
        prefix,
        page,
        pageSize,
      });
      return {
        currentPath: r.currentPath,
        totalCount: r.totalCount,
        items: r.items.map((i) =>
          i.kind === "folder"
            ? { folder: i.name, path: i.fullPath, count: i.secretCount }
            : { secret: i.name, path: i.fullPath },
        ),
      };
    };
    expect(await browse("/")).toEqual({
      currentPath: "/",
      totalCount: 3,
      items: [
        { folder: "a", path: "/a", count: 4 },
        { folder: "ab", path: "/ab", count: 1 },
        { secret: "root-secret", path: "/root-secret" },
      ],
    });
    expect(await browse("/a/")).toEqual({
      currentPath: "/a",
      totalCount: 3,
      items: [
        { folder: "b", path: "/a/b", count: 2 },
        { secret: "x1", path: "/a/x1" },
        { secret: "x2", path: "/a/x2" },
      ],
    });
    expect((await browse("/a/b/c")).items).toEqual([{ secret: "z1", path: "/a/b/c/z1" }]);
    expect(await browse("/nothing")).toEqual({ currentPath: "/nothing", totalCount: 0, items: [] });

    // Pages run through the folders, then the secrets.
    const pageOf = async (page: number, size: number) =>
      (await browse("/", page, size)).items.map((i) => ("folder" in i ? i.folder : i.secret));
    expect(await pageOf(1, 2)).toEqual(["a", "ab"]);
    expect(await pageOf(2, 2)).toEqual(["root-secret"]);
    expect(await pageOf(2, 1)).toEqual(["ab"]);
    expect(await pageOf(3, 1)).toEqual(["root-secret"]);
    expect(await pageOf(4, 1)).toEqual([]);
    expect((await browse("/", 4, 1)).totalCount).toBe(3);
    expect(await browse("/a", 1, 2)).toMatchObject({ totalCount: 3 });
    expect((await browse("/a", 2, 2)).items).toEqual([{ secret: "x2", path: "/a/x2" }]);

    await expectInvalid(browse("a"), "prefix", 'must start with "/"');
  });

  it("lists the tags and the types in use in a project", async () => {
    const projectId = randomUUID();
    await ensureProjects(domain, projectId);
    await newSecret(domain, { projectId, tags: ["beta", "alpha"] }, null);
    await newSecret(domain, { projectId, tags: ["gamma", "alpha"], type: "key_value" }, null);
    const { secret: gone } = await newSecret(
      domain,
      { projectId, tags: ["zeta"], type: "ssh_key" },
      null,
    );
    await deleteSecret(domain, caller, { region: "", secretId: gone.id, etag: "" });
    await newSecret(
      domain,
      { projectId: OTHER_PROJECT, tags: ["other"], type: "certificate" },
      null,
    );

    const tags = (page: number, pageSize: number) =>
      listTags(domain, caller, { region: "", projectId, page, pageSize });
    expect(await tags(0, 0)).toEqual({
      tags: ["alpha", "beta", "gamma"],
      totalCount: 3,
      nextPageToken: "",
    });
    expect(await tags(2, 2)).toEqual({ tags: ["gamma"], totalCount: 3, nextPageToken: "" });
    expect((await tags(1, 2)).nextPageToken).not.toBe("");
    // Past the last page: nothing, but the total still counts every tag.
    expect(await tags(3, 2)).toEqual({ tags: [], totalCount: 3, nextPageToken: "" });
    expect(
      await listSecretTypes(domain, caller, { region: "", projectId, page: 0, pageSize: 0 }),
    ).toEqual({ types: ["key_value", "opaque"], totalCount: 2, nextPageToken: "" });
    expect(
      await listSecretTypes(domain, caller, { region: "", projectId, page: 2, pageSize: 1 }),
    ).toEqual({ types: ["opaque"], totalCount: 2, nextPageToken: "" });
    expect(
      await listSecretTypes(domain, caller, { region: "", projectId, page: 3, pageSize: 1 }),
    ).toEqual({ types: [], totalCount: 2, nextPageToken: "" });
    expect(
      await listTags(domain, caller, { region: "", projectId: randomUUID(), page: 0, pageSize: 0 }),
    ).toEqual({ tags: [], totalCount: 0, nextPageToken: "" });
  });

  it("refuses an unknown region, listing the known ones", async () => {
    const message = 'unknown region "mars"; this server has: eu-a, eu-b';
    await expectInvalid(newSecret(domain, { region: "mars" }), "region", message);
    await expectInvalid(
      getSecret(domain, caller, { region: "mars", secretId: randomUUID() }),
      "region",
      message,
    );
    await expectInvalid(listSecrets(domain, caller, { ...listAll(), region: "mars" }), "region");
    await expectInvalid(
      accessVersion(domain, caller, { region: "mars", secretId: randomUUID(), revision: "1" }),
      "region",
      message,
    );
  });

  for (const setup of ["one database per region", "two regions sharing one database"]) {
    it(`keeps a secret in its region (${setup})`, async () => {
      const d = setup === "one database per region" ? domain : sharedDomain;
      const projectId = randomUUID();
      await ensureProjects(domain, projectId);
      const name = unique();
      const { secret } = await newSecret(d, { region: "eu-b", projectId, name }, "in eu-b");
      expect(secret.region).toBe("eu-b");
      const inA = { region: "eu-a", secretId: secret.id, etag: "" };
      const notFound = `secret ${secret.id} not found`;

      await expectDomainError(getSecret(d, caller, inA), "not_found", notFound);
      await expectDomainError(getSecret(d, caller, { ...inA, region: "" }), "not_found", notFound);
      await expectDomainError(
        updateSecret(d, caller, { ...inA, description: "moved?" }),
        "not_found",
        notFound,
      );
      await expectDomainError(deleteSecret(d, caller, inA), "not_found", notFound);
      await expectDomainError(
        setProtection(d, caller, { ...inA, protected: true }),
        "not_found",
        notFound,
      );
      await expectDomainError(
        addVersion(d, secret.id, "x", { region: "eu-a" }),
        "not_found",
        notFound,
      );
      await expectDomainError(
        accessVersion(d, caller, { ...inA, revision: "latest" }),
        "not_found",
        notFound,
      );
      await expectDomainError(
        accessVersionByPath(d, caller, {
          region: "eu-a",
          projectId,
          path: "/",
          name,
          revision: "1",
        }),
        "not_found",
      );
      await expectDomainError(
        listVersions(d, caller, { ...inA, statuses: [], page: 0, pageSize: 0 }),
        "not_found",
        notFound,
      );
      await expectDomainError(
        getVersion(d, caller, { ...inA, revision: "1" }),
        "not_found",
        notFound,
      );
      const listIn = (region: string) =>
        listSecrets(d, caller, { ...listAll(), projectId, region });
      expect((await listIn("eu-a")).totalCount).toBe(0);
      expect((await listIn("eu-b")).secrets.map((s) => s.id)).toEqual([secret.id]);
      expect(
        (
          await browseSecrets(d, caller, {
            region: "eu-a",
            projectId,
            prefix: "/",
            page: 0,
            pageSize: 0,
          })
        ).items,
      ).toEqual([]);

      // The same address is free in the other region, and both stay apart.
      const { secret: inRegionA } = await newSecret(
        d,
        { region: "eu-a", projectId, name },
        "in eu-a",
      );
      expect(inRegionA.region).toBe("eu-a");
      const read = await accessVersion(d, caller, {
        region: "eu-b",
        secretId: secret.id,
        revision: "1",
      });
      expect(textOf(read.data)).toBe("in eu-b");
      const readA = await accessVersionByPath(d, caller, {
        region: "",
        projectId,
        path: "/",
        name,
        revision: "1",
      });
      expect(textOf(readA.data)).toBe("in eu-a");
      expect(readA.secretId).toBe(inRegionA.id);
    });
  }
});

/** A list request over PROJECT in the default region with no filter. */
function listAll(): ListSecretsInput {
  return { region: "", projectId: PROJECT, tags: [], orderBy: "name_asc", page: 0, pageSize: 0 };
}
