import { Errors } from "@scaleway/sdk-client";
import type { Secretv1beta1 } from "@scaleway/sdk-secret";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ServerProcess } from "../support/server-process.ts";
import {
  type CompatServer,
  describeOnBackends,
  REGION,
  startCompatServer,
} from "./support/backends.ts";
import { adminOf, createProject, createScalewayKey, createToken, Role } from "./support/coffer.ts";
import { refusal, type ScalewaySecrets, scalewaySecrets } from "./support/scaleway.ts";

/**
 * The secret endpoints of the Scaleway Secret Manager API, driven by the real
 * `@scaleway/sdk-secret` client against a coffer-server process: what the
 * SDK hands its user after each call, and what a later call then sees.
 */

type ListSecretsRequest = Secretv1beta1.ListSecretsRequest;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeOnBackends("Scaleway SDK: secrets", (backend) => {
  let coffer: CompatServer | undefined;
  let server: ServerProcess;
  let api: ScalewaySecrets;
  let projectId = "";
  /** A full_access token for a project of its own, for the pagination tests. */
  let pagedApi: ScalewaySecrets;
  let pagedProjectId = "";

  beforeAll(async () => {
    coffer = await startCompatServer(backend, "secrets");
    server = coffer.server;
    const admin = adminOf(server);
    [projectId, pagedProjectId] = await Promise.all([createProject(admin), createProject(admin)]);
    const [key, pagedKey] = await Promise.all([
      createScalewayKey(admin, projectId, Role.FULL_ACCESS),
      createScalewayKey(admin, pagedProjectId, Role.FULL_ACCESS),
    ]);
    api = scalewaySecrets(server, key, projectId);
    pagedApi = scalewaySecrets(server, pagedKey, pagedProjectId);
  });

  afterAll(async () => {
    await coffer?.stop();
  });

  it("createSecret answers the secret as Scaleway describes one, and getSecret reads it back", async () => {
    const before = Date.now();
    const created = await api.createSecret({
      projectId,
      name: "db-password",
      path: "/prod/api",
      tags: ["prod", "db"],
      description: "the API's database password",
      type: "opaque",
      protected: false,
    });
    expect(created).toMatchObject({
      projectId,
      name: "db-password",
      path: "/prod/api",
      // Coffer keeps a secret's tags sorted.
      tags: ["db", "prod"],
      description: "the API's database password",
      type: "opaque",
      status: "ready",
      protected: false,
      managed: false,
      versionCount: 0,
      usedBy: [],
      keyId: null,
      region: REGION,
      ephemeralPolicy: undefined,
      deletionRequestedAt: undefined,
    });
    expect(created.id).toMatch(UUID);
    expect(created.createdAt).toBeInstanceOf(Date);
    expect(created.createdAt?.getTime()).toBeGreaterThanOrEqual(before - 1_000);
    expect(created.updatedAt?.getTime()).toBe(created.createdAt?.getTime());

    const read = await api.getSecret({ secretId: created.id });
    expect(read).toEqual(created);
  });

  it("a Coffer token works too, sent as X-Auth-Token by an interceptor", async () => {
    const token = await createToken(adminOf(server), projectId, Role.FULL_ACCESS);
    const withToken = scalewaySecrets(server, token.value, projectId);
    const created = await withToken.createSecret({
      name: "with-coffer-token",
      path: "/token",
      protected: false,
    });
    // The same secret, whichever credential reads it.
    expect(await api.getSecret({ secretId: created.id })).toEqual(created);
    expect(await withToken.getSecret({ secretId: created.id })).toEqual(created);
  });

  it("createSecret takes the SDK's defaults: the default project, type opaque, path /", async () => {
    const created = await api.createSecret({ name: "defaults", protected: false });
    expect(created).toMatchObject({ projectId, path: "/", type: "opaque", tags: [] });
  });

  it("updateSecret changes name, path, description and tags, and only what it is given", async () => {
    const created = await api.createSecret({
      name: "to-update",
      path: "/update",
      tags: ["a"],
      description: "before",
      protected: false,
    });
    const renamed = await api.updateSecret({
      secretId: created.id,
      name: "updated",
      path: "/update/moved",
    });
    expect(renamed).toMatchObject({
      name: "updated",
      path: "/update/moved",
      tags: ["a"],
      description: "before",
    });
    const retagged = await api.updateSecret({
      secretId: created.id,
      tags: ["b", "c"],
      description: "after",
    });
    expect(retagged).toMatchObject({
      id: created.id,
      name: "updated",
      path: "/update/moved",
      tags: ["b", "c"],
      description: "after",
      createdAt: created.createdAt,
    });
    expect(retagged.updatedAt?.getTime()).toBeGreaterThan(created.updatedAt?.getTime() ?? 0);
    expect(await api.getSecret({ secretId: created.id })).toEqual(retagged);
  });

  it("protectSecret and unprotectSecret set and clear protected; a protected secret is not deleted", async () => {
    const created = await api.createSecret({ name: "guarded", path: "/protect", protected: false });
    const guarded = await api.protectSecret({ secretId: created.id });
    expect(guarded).toMatchObject({ id: created.id, protected: true });
    expect((await api.getSecret({ secretId: created.id })).protected).toBe(true);

    const err = await refusal(api.deleteSecret({ secretId: created.id }));
    expect(err).toBeInstanceOf(Errors.PreconditionFailedError);
    expect(err).toMatchObject({ status: 412, precondition: "protected_resource" });
    expect((await api.getSecret({ secretId: created.id })).deletionRequestedAt).toBeUndefined();

    const open = await api.unprotectSecret({ secretId: created.id });
    expect(open).toMatchObject({ id: created.id, protected: false });
    await api.deleteSecret({ secretId: created.id });
  });

  it("deleteSecret schedules deletion: listSecrets hides it unless asked, restoreSecret brings it back", async () => {
    const created = await api.createSecret({ name: "doomed", path: "/delete", protected: false });
    expect(await api.deleteSecret({ secretId: created.id })).toBeUndefined();

    const deleted = await api.getSecret({ secretId: created.id });
    expect(deleted.deletionRequestedAt).toBeInstanceOf(Date);
    const listed = await api.listSecrets({
      projectId,
      path: "/delete",
      scheduledForDeletion: false,
    });
    expect(listed.secrets.map((s) => s.id)).not.toContain(created.id);
    const scheduled = await api.listSecrets({
      projectId,
      path: "/delete",
      scheduledForDeletion: true,
    });
    expect(scheduled.secrets.map((s) => s.id)).toEqual([created.id]);
    expect(scheduled.totalCount).toBe(1);

    const restored = await api.restoreSecret({ secretId: created.id });
    expect(restored).toMatchObject({ id: created.id, deletionRequestedAt: undefined });
    const after = await api.listSecrets({
      projectId,
      path: "/delete",
      scheduledForDeletion: false,
    });
    expect(after.secrets.map((s) => s.id)).toEqual([created.id]);
  });

  it("addSecretOwner is refused naming product, and changes nothing", async () => {
    const created = await api.createSecret({ name: "owned", path: "/owner", protected: false });
    const err = await refusal(
      api.addSecretOwner({ secretId: created.id, product: "edge_services" }),
    );
    expect(err).toBeInstanceOf(Errors.InvalidArgumentsError);
    const { details } = err as InstanceType<typeof Errors.InvalidArgumentsError>;
    expect(details.map((d) => d.argumentName)).toEqual(["product"]);
    expect(await api.getSecret({ secretId: created.id })).toEqual(created);
  });

  it("listSecrets filters by name, path, tags and type, and counts what matches", async () => {
    const a = await api.createSecret({
      name: "alpha",
      path: "/filters",
      tags: ["red", "round"],
      protected: false,
    });
    const b = await api.createSecret({
      name: "beta",
      path: "/filters",
      tags: ["red"],
      type: "key_value",
      protected: false,
    });
    await api.createSecret({ name: "alpha", path: "/filters/deeper", protected: false });
    const ids = async (request: Omit<ListSecretsRequest, "scheduledForDeletion">) => {
      const page = await api.listSecrets({ projectId, scheduledForDeletion: false, ...request });
      expect(page.totalCount).toBe(page.secrets.length);
      return page.secrets.map((s) => s.id).sort();
    };
    expect(await ids({ path: "/filters" })).toEqual([a.id, b.id].sort());
    expect(await ids({ path: "/filters", name: "alpha" })).toEqual([a.id]);
    expect(await ids({ path: "/filters", tags: ["red"] })).toEqual([a.id, b.id].sort());
    expect(await ids({ path: "/filters", tags: ["red", "round"] })).toEqual([a.id]);
    expect(await ids({ path: "/filters", type: "key_value" })).toEqual([b.id]);
    expect(await ids({ path: "/filters", orderBy: "name_desc" })).toEqual([a.id, b.id].sort());
    const ordered = await api.listSecrets({
      projectId,
      path: "/filters",
      orderBy: "name_desc",
      scheduledForDeletion: false,
    });
    expect(ordered.secrets.map((s) => s.name)).toEqual(["beta", "alpha"]);
  });

  it("listSecrets pages, and .all() over 10 secrets in pages of 3 returns each exactly once", async () => {
    const made = [];
    for (let i = 0; i < 10; i++) {
      made.push(
        await pagedApi.createSecret({
          name: `paged-${String(i).padStart(2, "0")}`,
          path: "/paged",
          tags: [`tag-${i}`],
          protected: false,
        }),
      );
    }
    const first = await pagedApi.listSecrets({
      pageSize: 3,
      orderBy: "name_asc",
      scheduledForDeletion: false,
    });
    expect(first.totalCount).toBe(10);
    expect(first.secrets.map((s) => s.name)).toEqual(["paged-00", "paged-01", "paged-02"]);
    const last = await pagedApi.listSecrets({
      page: 4,
      pageSize: 3,
      orderBy: "name_asc",
      scheduledForDeletion: false,
    });
    expect(last.secrets.map((s) => s.name)).toEqual(["paged-09"]);

    const all = await pagedApi
      .listSecrets({ pageSize: 3, orderBy: "name_asc", scheduledForDeletion: false })
      .all();
    expect(all.map((s) => s.id)).toEqual(made.map((s) => s.id));
    const iterated: string[] = [];
    for await (const page of pagedApi.listSecrets({ pageSize: 3, scheduledForDeletion: false })) {
      iterated.push(...page.map((s) => s.id));
    }
    expect(iterated.sort()).toEqual(made.map((s) => s.id).sort());
  });

  it("listTags lists the project's tags, and .all() in pages of 3 returns each exactly once", async () => {
    // The paged project's ten secrets carry tag-0 … tag-9 (the test above).
    const expected = Array.from({ length: 10 }, (_, i) => `tag-${i}`).sort();
    const first = await pagedApi.listTags({ pageSize: 3 });
    expect(first.totalCount).toBe(10);
    expect(first.tags).toHaveLength(3);
    const all = await pagedApi.listTags({ pageSize: 3 }).all();
    expect([...all].sort()).toEqual(expected);
    expect(new Set(all).size).toBe(10);
  });

  it("listSecretTypes lists the types in use, and .all() returns each exactly once", async () => {
    const typed = await createProject(adminOf(server));
    const key = await createScalewayKey(adminOf(server), typed, Role.FULL_ACCESS);
    const typedApi = scalewaySecrets(server, key, typed);
    for (const type of ["opaque", "key_value", "basic_credentials", "opaque"] as const) {
      await typedApi.createSecret({
        name: `t-${Math.random()}`.replace(".", ""),
        type,
        protected: false,
      });
    }
    const first = await typedApi.listSecretTypes({ pageSize: 1 });
    expect(first.totalCount).toBe(3);
    expect(first.types).toHaveLength(1);
    const all = await typedApi.listSecretTypes({ pageSize: 1 }).all();
    expect([...all].sort()).toEqual(["basic_credentials", "key_value", "opaque"]);
  });

  it("browseSecrets shows a folder's sub-folders and secrets, folders first", async () => {
    const top = await api.createSecret({ name: "top", path: "/browse", protected: false });
    await api.createSecret({ name: "inner", path: "/browse/sub", protected: false });
    await api.createSecret({ name: "deep", path: "/browse/sub/deeper", protected: false });
    await api.createSecret({ name: "other", path: "/browse/other", protected: false });

    const browsed = await api.browseSecrets({ projectId, prefix: "/browse" });
    expect(browsed.currentPath).toBe("/browse");
    expect(browsed.totalCount).toBe(3);
    expect(browsed.items.map((i) => [i.name, i.folder !== undefined])).toEqual([
      ["other", true],
      ["sub", true],
      ["top", false],
    ]);
    const secret = browsed.items[2];
    expect(secret?.secret).toMatchObject({
      id: top.id,
      type: "opaque",
      versionCount: 0,
      protected: false,
      tags: [],
    });
    expect(secret?.createdAt).toEqual(top.createdAt);

    const paged = await api.browseSecrets({ projectId, prefix: "/browse", page: 2, pageSize: 2 });
    expect(paged.items.map((i) => i.name)).toEqual(["top"]);
    expect(paged.totalCount).toBe(3);

    // The SDK sends no project when it browses: a key for one project browses that one.
    const unnamed = await api.browseSecrets({ prefix: "/browse" });
    expect(unnamed.items.map((i) => i.name)).toEqual(["other", "sub", "top"]);
  });
});
