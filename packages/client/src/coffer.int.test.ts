import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { serverBackends, type TestServer } from "@coffer/server/testing";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import {
  allPages,
  ChecksumError,
  type CofferProtocol,
  createCoffer,
  type DatabaseCredentialsPayload,
  type KeyValuePayload,
  SecretType,
  SingleAccessError,
  type WatchEvent,
  WatchEventKind,
} from "./index.ts";
import {
  CuttableProxy,
  createSingleAccess,
  DB_CREDENTIALS,
  type Seeded,
  seed,
  until,
  urlOf,
} from "./test-server.ts";
import { bundleForBrowser } from "./web-bundle.ts";

const PROTOCOLS: CofferProtocol[] = ["grpc", "connect", "grpc-web"];
const K = WatchEventKind;

/** Flips the first byte of every payload on its way to the caller. */
const flipFirstByte: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (!res.stream && res.method.name.startsWith("AccessSecretVersion")) {
    const data = (res.message as unknown as { data: Uint8Array }).data;
    if (data.length > 0) data[0] = (data[0] as number) ^ 0x01;
  }
  return res;
};

/** The error a call fails with; a call that succeeds fails the test. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe.each(serverBackends)("createCoffer against a server on $name", (backend) => {
  let server: TestServer;
  let seeded: Seeded;

  beforeAll(async () => {
    server = await backend.start();
    seeded = await seed(server);
  });
  afterAll(() => server?.stop());

  describe.each(PROTOCOLS)("over %s", (protocol) => {
    const coffer = (options: { interceptors?: Interceptor[] } = {}) =>
      createCoffer({
        url: urlOf(server, protocol),
        protocol,
        token: seeded.accessToken,
        projectId: seeded.projectId,
        timeoutMs: 20_000,
        ...options,
      });

    it("allPages walks every secret through page tokens, once each", async () => {
      const rpc = server.client(protocol, server.adminToken);
      const all = await rpc.listSecrets({ projectId: seeded.projectId, pageSize: 1000 });
      const walked: string[] = [];
      let pages = 0;
      for await (const page of allPages(rpc.listSecrets, {
        projectId: seeded.projectId,
        pageSize: 2,
      })) {
        pages++;
        walked.push(...page.secrets.map((s) => s.id));
      }
      expect(walked).toEqual(all.secrets.map((s) => s.id));
      expect(pages).toBe(Math.ceil(all.secrets.length / 2));
    });

    it("reads by path, typed by the secret's type", async () => {
      const db = await coffer().access("/prod/db", { type: SecretType.DATABASE_CREDENTIALS });
      expectTypeOf(db.json()).toEqualTypeOf<DatabaseCredentialsPayload>();
      expect(db.json()).toEqual(DB_CREDENTIALS);
      expect(db).toMatchObject({
        secretId: seeded.ids["/prod/db"],
        revision: 1,
        type: SecretType.DATABASE_CREDENTIALS,
        singleAccess: false,
      });

      const kv = await coffer().access("/prod/kv", { type: SecretType.KEY_VALUE });
      expectTypeOf(kv.json()).toEqualTypeOf<KeyValuePayload>();
      expect(kv.json()).toEqual({ mode: "v2", retries: 3, tls: true });
      expect((await coffer().access("/prod/basic")).json()).toEqual({
        username: "u",
        password: "p",
      });
      const ssh = await coffer().access("/prod/ssh", { type: SecretType.SSH_KEY });
      expect(ssh.json().ssh_private_key).toBe(seeded.sshKeyPem);
      expect((await coffer().access("/root-level")).text()).toBe("at the root");
    });

    it("reads by id, by revision, and gives certificates as text and opaque bytes as bytes", async () => {
      const id = seeded.ids["/prod/kv"] as string;
      expect((await coffer().access(id, { revision: 1 })).json()).toEqual({ mode: "v1" });
      expect((await coffer().access({ secretId: id }, { revision: "latest" })).revision).toBe(2);
      expect((await coffer().access({ path: "/prod", name: "kv" })).revision).toBe(2);
      const cert = await coffer().access("/certs/ca");
      expect(cert.type).toBe(SecretType.CERTIFICATE);
      expect(cert.text()).toBe(seeded.certificatePem);
      const blob = await coffer().access(seeded.ids["/bin/blob"] as string);
      expect(blob.bytes).toEqual(seeded.binary);
    });

    it("takes the project from the call over the client's, and passes server errors on", async () => {
      const noProject = createCoffer({
        url: urlOf(server, protocol),
        protocol,
        token: seeded.accessToken,
      });
      const db = await noProject.access("/prod/db", { projectId: seeded.projectId });
      expect(db.json()).toMatchObject({ host: "db.internal" });
      const missing = await failure(coffer().access("/prod/nothing"));
      expect(missing).toMatchObject({
        code: Code.NotFound,
        rawMessage: `secret "nothing" not found at path "/prod" in project ${seeded.projectId}`,
      });
    });

    it("refuses a payload that fails its CRC-32 instead of returning it", async () => {
      const corrupted = coffer({ interceptors: [flipFirstByte] });
      for (const read of [
        () => corrupted.access("/prod/db"),
        () =>
          corrupted.rpc.accessSecretVersion({ secretId: seeded.ids["/prod/db"], revision: "1" }),
      ]) {
        const err = await read().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ChecksumError);
        expect(err).toMatchObject({
          code: Code.DataLoss,
          secretId: seeded.ids["/prod/db"],
          revision: 1,
        });
        expect(String((err as Error).message)).not.toContain("pa55word");
      }
    });

    it("spends a single-access version only when asked, exactly once", async () => {
      const id = await createSingleAccess(
        server,
        seeded.projectId,
        `/once/${protocol}`,
        "bootstrap-token",
      );
      const c = coffer();
      const refused = await c.access(`/once/${protocol}`).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SingleAccessError);
      expect(refused).toMatchObject({ secretId: id, revision: 1 });

      const value = await c.access(`/once/${protocol}`, { consumeSingleAccess: true });
      expect(value.text()).toBe("bootstrap-token");
      expect(value.singleAccess).toBe(true);

      const again = await failure(c.access(id, { consumeSingleAccess: true }));
      // Consumed (action disable): no enabled version is left.
      expect(again.code).toBe(Code.NotFound);
      const pinned = await failure(c.access(id, { revision: 1, consumeSingleAccess: true }));
      expect(pinned).toMatchObject({
        code: Code.FailedPrecondition,
        rawMessage: `version 1 of secret ${id} was already accessed: it is single-access (expires once accessed)`,
      });
    });

    it("follows changes, resuming after the connection is cut without missing or repeating any", async () => {
      const proxy = await CuttableProxy.start(
        protocol === "grpc" ? server.server.grpcPort : server.server.httpPort,
      );
      const writer = server.client("connect", server.adminToken);
      const folder = `/watched/${protocol}`;
      const abort = new AbortController();
      const reconnects: (Code | undefined)[] = [];
      const events: WatchEvent[] = [];
      const watch = createCoffer({
        url: proxy.url,
        protocol,
        token: seeded.accessToken,
        projectId: seeded.projectId,
      }).watch({
        selectors: [{ pathPrefix: folder }],
        signal: abort.signal,
        backoff: { initialDelayMs: 50, maxDelayMs: 200 },
        onReconnect: (r) => reconnects.push(r.error?.code),
      });
      const done = (async () => {
        for await (const event of watch) events.push(event);
      })();
      const seen = () => events.map((e) => `${K[e.kind]} ${e.name}#${e.revision}`);
      try {
        await until(
          () => watch.cursor !== "",
          () => "no first heartbeat",
        );
        const { secret } = await writer.createSecret({
          projectId: seeded.projectId,
          path: folder,
          name: "app",
          firstVersion: { data: new TextEncoder().encode("1") },
        });
        await until(
          () => events.length === 2,
          () => seen().join(", "),
        );

        proxy.down();
        // Written while the watch is cut off: replayed from its cursor.
        for (const n of ["2", "3"]) {
          await writer.createSecretVersion({
            secretId: secret?.id,
            data: new TextEncoder().encode(n),
          });
        }
        await until(
          () => reconnects.length > 0,
          () => "no reconnection",
        );
        proxy.up();
        await until(
          () => events.length === 4,
          () => seen().join(", "),
        );
        expect(seen()).toEqual([
          "SECRET_CREATED app#0",
          "VERSION_CREATED app#1",
          "VERSION_CREATED app#2",
          "VERSION_CREATED app#3",
        ]);
        expect(new Set(events.map((e) => e.cursor)).size).toBe(4);
        expect(watch.cursor).toBe(events[3]?.cursor);
        // A cut connection is not a reason to give up.
        expect(reconnects.every((code) => code !== Code.Unauthenticated)).toBe(true);
      } finally {
        abort.abort();
        await done;
        await proxy.close();
      }
      expect(seen()).toHaveLength(4);
    });
  });
  describe("the browser bundle, over Node's fetch", () => {
    let web: typeof import("./web.ts");
    let dir: string;

    beforeAll(async () => {
      const bundle = await bundleForBrowser("web.ts");
      dir = mkdtempSync(path.join(tmpdir(), "coffer-web-"));
      const file = path.join(dir, "coffer-web.mjs");
      writeFileSync(file, bundle.code);
      web = await import(/* @vite-ignore */ pathToFileURL(file).href);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it.each(["connect", "grpc-web"] as const)(
      "reads, verifies and watches over %s",
      async (protocol) => {
        const options = {
          url: urlOf(server, "connect"),
          protocol,
          token: seeded.accessToken,
          projectId: seeded.projectId,
        };
        const coffer = web.createCoffer(options);
        const db = await coffer.access("/prod/db", { type: web.SecretType.DATABASE_CREDENTIALS });
        expect(db.json()).toEqual(DB_CREDENTIALS);
        expect((await coffer.access(seeded.ids["/bin/blob"] as string)).bytes).toEqual(
          seeded.binary,
        );

        const corrupted = web.createCoffer({ ...options, interceptors: [flipFirstByte] });
        const err = await corrupted.access("/prod/db").catch((e: unknown) => e);
        expect(err).toBeInstanceOf(web.ChecksumError);

        const abort = new AbortController();
        const watch = coffer.watch({
          selectors: [{ pathPrefix: `/web/${protocol}` }],
          signal: abort.signal,
        });
        const events: WatchEvent[] = [];
        const done = (async () => {
          for await (const event of watch) {
            events.push(event);
            if (events.length === 2) abort.abort();
          }
        })();
        await until(
          () => watch.cursor !== "",
          () => "no first heartbeat",
        );
        await server.client("connect", server.adminToken).createSecret({
          projectId: seeded.projectId,
          path: `/web/${protocol}`,
          name: "flags",
          firstVersion: { data: new TextEncoder().encode("on") },
        });
        await done;
        expect(events.map((e) => `${K[e.kind]} ${e.name}`)).toEqual([
          "SECRET_CREATED flags",
          "VERSION_CREATED flags",
        ]);
      },
    );
  });
});
