import { SecretService, SecretType } from "@coffer/api";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, expectTypeOf, it } from "vitest";
import { accessSecret, parseRef } from "./access.ts";
import { ChecksumError, SecretTypeError, SingleAccessError } from "./errors.ts";
import { type AccessInit, answer, createFake, type FakeOptions, SECRET_ID } from "./fake-coffer.ts";
import type { DatabaseCredentialsPayload, KeyValuePayload } from "./secret-value.ts";

/** A client over the fake with no interceptors: the helper's own checks only. */
function bare(options: FakeOptions) {
  const fake = createFake(options);
  return { fake, client: createClient(SecretService, fake.transport([])) };
}

const json = (v: unknown) => JSON.stringify(v);

describe("parseRef", () => {
  it("reads a location as folder and name, and a UUID as an id", () => {
    expect(parseRef("/prod/db")).toEqual({ path: "/prod", name: "db" });
    expect(parseRef("/db")).toEqual({ path: "/", name: "db" });
    expect(parseRef("/a/b/c.d")).toEqual({ path: "/a/b", name: "c.d" });
    expect(parseRef(SECRET_ID)).toEqual({ secretId: SECRET_ID });
    expect(parseRef(SECRET_ID.toUpperCase())).toEqual({ secretId: SECRET_ID.toUpperCase() });
    expect(parseRef({ path: "/x", name: "y" })).toEqual({ path: "/x", name: "y" });
  });

  it("refuses what is neither", () => {
    expect(() => parseRef("db")).toThrow(
      '"db" is neither a secret\'s location ("/path/name") nor a secret id (a UUID)',
    );
    expect(() => parseRef("/prod/")).toThrow('"/prod/" names a folder, not a secret');
  });
});

describe("accessSecret", () => {
  it("gives bytes, text and JSON typed by the secret's type", async () => {
    const creds = {
      engine: "postgres",
      username: "app",
      password: "pw",
      host: "db",
      dbname: "shop",
      port: "5432",
    };
    const { client } = bare({
      access: () => answer(json(creds), { type: SecretType.DATABASE_CREDENTIALS, revision: 4 }),
    });
    const value = await accessSecret(client, SECRET_ID, {
      type: SecretType.DATABASE_CREDENTIALS,
    });
    expectTypeOf(value.json()).toEqualTypeOf<DatabaseCredentialsPayload>();
    expect(value.json()).toEqual(creds);
    expect(value.text()).toBe(json(creds));
    expect(value.bytes).toEqual(new TextEncoder().encode(json(creds)));
    expect(value).toMatchObject({ secretId: SECRET_ID, revision: 4, singleAccess: false });

    // Without `type`, a union narrowed by `type`.
    const any = await accessSecret(client, SECRET_ID);
    if (any.type === SecretType.KEY_VALUE)
      expectTypeOf(any.json()).toEqualTypeOf<KeyValuePayload>();
    expect(any.type).toBe(SecretType.DATABASE_CREDENTIALS);
  });

  it("sends the revision, project and region it is given, with no_consume", async () => {
    const seen: unknown[] = [];
    const fake = createFake({});
    const client = createClient(
      SecretService,
      fake.transport([
        (next) => (req) => {
          seen.push(req.message);
          return next(req);
        },
      ]),
    );
    await accessSecret(client, "/prod/db", { projectId: "p1", region: "eu", revision: 3 });
    await accessSecret(client, SECRET_ID, { revision: "latest" });
    expect(seen).toMatchObject([
      { projectId: "p1", region: "eu", path: "/prod", name: "db", revision: "3", noConsume: true },
      { secretId: SECRET_ID, region: "", revision: "latest", noConsume: true },
    ]);
    await expect(accessSecret(client, "/prod/db")).rejects.toThrow(
      "reading /prod/db by path needs a projectId",
    );
    await expect(accessSecret(client, SECRET_ID, { revision: 0 })).rejects.toThrow(
      "revision must be a positive integer (got 0)",
    );
  });

  it("refuses a payload that fails its CRC-32, and zeroes it", async () => {
    const data = new TextEncoder().encode("s3cret");
    let sent: Uint8Array | undefined;
    const { client } = bare({
      access: () => answer(data, { dataCrc32: 12345, revision: 2 }),
    });
    const spy = createClient(
      SecretService,
      createFake({ access: () => answer(data, { dataCrc32: 12345 }) }).transport([
        (next) => async (req) => {
          const res = await next(req);
          sent = (res.message as unknown as { data: Uint8Array }).data;
          return res;
        },
      ]),
    );
    const err = await accessSecret(client, SECRET_ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    // Still a ConnectError to everything that handles them by code.
    expect(err).toBeInstanceOf(ConnectError);
    expect(ConnectError.from(err)).toBe(err);
    expect(err).not.toBeInstanceOf(SingleAccessError);
    expect(err).toMatchObject({
      code: Code.DataLoss,
      secretId: SECRET_ID,
      revision: 2,
      expected: 12345,
      rawMessage: `the payload of secret ${SECRET_ID} revision 2 fails its CRC-32 check (announced 0x00003039, received 0xebf1d28e); it was discarded`,
    });
    await expect(accessSecret(spy, SECRET_ID)).rejects.toBeInstanceOf(ChecksumError);
    expect(sent).toEqual(new Uint8Array(6));
  });

  it("refuses a single-access version unless asked to consume it", async () => {
    const singleAccess = (call: { noConsume: boolean }): AccessInit =>
      call.noConsume
        ? answer(new Uint8Array(), { revision: 5, singleAccess: true, dataCrc32: 0 })
        : answer("one-time", { revision: 5, singleAccess: true });
    const { client, fake } = bare({ access: singleAccess });
    const err = await accessSecret(client, SECRET_ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SingleAccessError);
    expect(err).toMatchObject({ code: Code.FailedPrecondition, revision: 5 });
    expect(fake.count("AccessSecretVersion", false)).toBe(0);

    const value = await accessSecret(client, "/prod/token", {
      projectId: "p",
      consumeSingleAccess: true,
    });
    expect(value.text()).toBe("one-time");
    expect(value.singleAccess).toBe(true);
    // The consuming access names the revision the probe resolved, by id.
    expect(fake.calls.slice(1)).toEqual([
      { method: "AccessSecretVersionByPath", noConsume: true, revision: "latest_enabled" },
      { method: "AccessSecretVersion", noConsume: false, revision: "5" },
    ]);
  });

  it("refuses a secret of another type before consuming anything", async () => {
    const { client, fake } = bare({
      access: () =>
        answer(new Uint8Array(), { type: SecretType.KEY_VALUE, singleAccess: true, dataCrc32: 0 }),
    });
    const err = await accessSecret(client, SECRET_ID, {
      type: SecretType.DATABASE_CREDENTIALS,
      consumeSingleAccess: true,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecretTypeError);
    expect((err as SecretTypeError).rawMessage).toBe(
      `secret ${SECRET_ID} is key_value, not database_credentials`,
    );
    expect(fake.count("AccessSecretVersion", false)).toBe(0);
  });

  it("explains text and JSON it cannot give, without quoting the payload", async () => {
    const read = (data: Uint8Array | string, type: SecretType) =>
      accessSecret(bare({ access: () => answer(data, { type }) }).client, SECRET_ID);
    const binary = await read(new Uint8Array([0xff, 0xfe, 0x41]), SecretType.OPAQUE);
    expect(() => binary.text()).toThrow(
      `the payload of secret ${SECRET_ID} revision 1 is not UTF-8 text; read .bytes instead`,
    );
    const notJson = await read("password=hunter2", SecretType.OPAQUE);
    expect(() => notJson.json()).toThrow(
      `the payload of secret ${SECRET_ID} revision 1 (opaque) is not valid JSON`,
    );
    expect(() => notJson.json()).not.toThrow(/hunter2/);
    const opaqueJson = await read('{"a":[1]}', SecretType.OPAQUE);
    expect(opaqueJson.json()).toEqual({ a: [1] });
    const cert = await read("-----BEGIN CERTIFICATE-----\n", SecretType.CERTIFICATE);
    expect(cert.text()).toBe("-----BEGIN CERTIFICATE-----\n");
    expect(() => cert.json()).toThrow("is a certificate (PEM text), not JSON; use .text()");
  });

  it("wipes the bytes on request", async () => {
    const value = await accessSecret(bare({}).client, SECRET_ID);
    value.wipe();
    expect(value.bytes).toEqual(new Uint8Array(6));
  });
});
