import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { crc32 } from "node:zlib";
import { type CofferClient, createCofferClient, SecretType, VersionStatus } from "@coffer/client";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServerProcess, startServer } from "../support/server-process.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * A user's first session: `npm start` with nothing configured but the admin
 * token (COFFER_BOOTSTRAP_TOKEN, as automation would set it), then the
 * quickstart (a secret in a folder, versions, single access), a restart, and
 * a look at everything the server printed meanwhile.
 */

const payloads: { marker: string; payload: Buffer }[] = [];

/** A payload holding a marker that no log line may ever contain. */
function markedPayload(label: string, template: (marker: string) => string): Buffer {
  const marker = `MARKER-${label}-${randomBytes(12).toString("hex")}`;
  const payload = Buffer.from(template(marker));
  payloads.push({ marker, payload });
  return payload;
}

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  return promise.then(
    (res) => {
      throw new Error(`expected the call to fail; it returned ${JSON.stringify(res)}`);
    },
    (err: unknown) => ConnectError.from(err),
  );
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

describe("first session on the embedded database", () => {
  let dataDir: string | undefined;
  let first: ServerProcess | undefined;
  let second: ServerProcess | undefined;
  let coffer: CofferClient;
  let projectId = "";
  const keyFile = () => path.join(dataDir ?? "", "master-keys.json");
  let keyFileHash = "";
  /** Every master key, base64 as stored in the key file. */
  let masterKeys: string[] = [];

  const v1 = markedPayload("v1", (m) => `{"user": "app", "password": "${m}"}`);
  const v2 = markedPayload("v2", (m) => `{"user": "app", "password": "${m}", "port": 5432}`);
  const v3 = markedPayload("v3", (m) => `{"user": "draft", "password": "${m}"}`);
  const v4 = markedPayload("v4", (m) => `{"user": "app", "password": "${m}", "tls": true}`);
  const otp = markedPayload("otp", (m) => `{"one_time_code": "${m}"}`);
  const bad = markedPayload("bad", (m) => `{"db": {"password": "${m}"}}`);
  let dbId = "";
  let otpId = "";

  beforeAll(async () => {
    dataDir = await makeTempDir("first-session");
    expect(await readdir(dataDir)).toEqual([]);
    // serverEnv drops every COFFER_* variable of the runner's environment, so
    // there is no COFFER_MASTER_KEYS and no COFFER_DATABASE_URL here.
    first = await startServer({ env: { COFFER_DATA_DIR: dataDir } });
    coffer = createCofferClient({ url: first.httpUrl, token: first.token, timeoutMs: 30_000 });
    projectId = await first.createProject();
  });

  afterAll(async () => {
    first?.kill();
    second?.kill();
    await Promise.all([first?.exited, second?.exited]);
    await removeTempDir(dataDir);
  });

  it("creates a master key file readable only by its owner on first start", async () => {
    const info = await stat(keyFile());
    expect(info.isFile()).toBe(true);
    expect((info.mode & 0o777).toString(8)).toBe("600");
    const content = await readFile(keyFile());
    keyFileHash = sha256(content);
    const parsed = JSON.parse(content.toString("utf8")) as {
      active: string;
      keys: Record<string, string>;
    };
    masterKeys = Object.values(parsed.keys);
    expect(masterKeys).toHaveLength(1);
    expect(Object.keys(parsed.keys)).toContain(parsed.active);
    expect(Buffer.from(masterKeys[0] ?? "", "base64")).toHaveLength(32);
  });

  it("creates a key_value secret at /prod/db and serves its versions", async () => {
    const created = await coffer.createSecret({
      projectId,
      path: "/prod",
      name: "db",
      type: SecretType.KEY_VALUE,
      firstVersion: { data: v1 },
    });
    dbId = created.secret?.id ?? "";
    expect(created.secret).toMatchObject({ path: "/prod", name: "db", type: SecretType.KEY_VALUE });
    expect(created.firstVersion).toMatchObject({
      revision: 1,
      status: VersionStatus.ENABLED,
      // The checksum travels only with the payload (issue 11 item 3).
      dataCrc32: 0,
    });

    const second = await coffer.createSecretVersion({ secretId: dbId, data: v2 });
    expect(second.version).toMatchObject({ revision: 2, status: VersionStatus.ENABLED });
    const draft = await coffer.createSecretVersion({ secretId: dbId, data: v3, enabled: false });
    expect(draft.version).toMatchObject({ revision: 3, status: VersionStatus.DISABLED });

    // latest_enabled skips the disabled draft; latest is the draft, refused.
    const latestEnabled = await coffer.accessSecretVersion({
      secretId: dbId,
      revision: "latest_enabled",
    });
    expect(latestEnabled.revision).toBe(2);
    expect(Buffer.from(latestEnabled.data).equals(v2)).toBe(true);
    expect(latestEnabled.dataCrc32).toBe(crc32(v2));
    const latest = await refusal(
      coffer.accessSecretVersion({ secretId: dbId, revision: "latest" }),
    );
    expect(latest.code).toBe(Code.FailedPrecondition);

    const byPath = await coffer.accessSecretVersionByPath({
      projectId,
      path: "/prod",
      name: "db",
      revision: "1",
    });
    expect(byPath.secretId).toBe(dbId);
    expect(Buffer.from(byPath.data).equals(v1)).toBe(true);

    // disable_previous turns off the version that was serving.
    const fourth = await coffer.createSecretVersion({
      secretId: dbId,
      data: v4,
      disablePrevious: true,
    });
    expect(fourth.version?.revision).toBe(4);
    const previous = await coffer.getSecretVersion({ secretId: dbId, revision: "2" });
    expect(previous.version?.status).toBe(VersionStatus.DISABLED);
    const now = await coffer.accessSecretVersion({ secretId: dbId, revision: "latest_enabled" });
    expect(now.revision).toBe(4);
    expect(Buffer.from(now.data).equals(v4)).toBe(true);
  });

  it("serves a single-access version once, then refuses it with FAILED_PRECONDITION", async () => {
    const created = await coffer.createSecret({
      projectId,
      path: "/prod",
      name: "otp",
      type: SecretType.KEY_VALUE,
      ephemeralPolicy: { expiresOnceAccessed: true },
      firstVersion: { data: otp },
    });
    otpId = created.secret?.id ?? "";
    expect(created.firstVersion?.ephemeralProperties?.expiresOnceAccessed).toBe(true);

    // Reading metadata does not consume.
    const meta = await coffer.getSecretVersion({ secretId: otpId, revision: "1" });
    expect(meta.version?.status).toBe(VersionStatus.ENABLED);

    const once = await coffer.accessSecretVersion({ secretId: otpId, revision: "1" });
    expect(Buffer.from(once.data).equals(otp)).toBe(true);
    expect(once.dataCrc32).toBe(crc32(otp));

    const twice = await refusal(coffer.accessSecretVersion({ secretId: otpId, revision: "1" }));
    expect(twice.code).toBe(Code.FailedPrecondition);
    for (const { marker } of payloads) expect(twice.rawMessage).not.toContain(marker);
  });

  it("refuses a payload that is not a flat JSON object, naming the field", async () => {
    const err = await refusal(coffer.createSecretVersion({ secretId: dbId, data: bad }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("data.db");
    for (const { marker } of payloads) expect(err.rawMessage).not.toContain(marker);
    // Nothing was stored.
    const latest = await coffer.getSecretVersion({ secretId: dbId, revision: "latest" });
    expect(latest.version?.revision).toBe(4);
  });

  it("exits with code 0 on SIGTERM", async () => {
    const exit = await first?.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(first?.logs().some((l) => l.msg === "stopped")).toBe(true);
  });

  it("restarts on the same data folder with the same key, and every secret is still there", async () => {
    if (dataDir === undefined || first === undefined) throw new Error("no first start");
    // The same environment as the first start: the token it created is the admin token.
    second = await startServer({
      env: { COFFER_DATA_DIR: dataDir, COFFER_BOOTSTRAP_TOKEN: first.token },
    });
    // The key file was reused, not replaced.
    expect(sha256(await readFile(keyFile()))).toBe(keyFileHash);
    expect((await readdir(dataDir)).filter((f) => f.includes("key"))).toEqual(["master-keys.json"]);

    // This time over gRPC, on the gRPC port.
    const grpc = createCofferClient({
      url: second.grpcUrl,
      protocol: "grpc",
      token: second.token,
      timeoutMs: 30_000,
    });
    const latest = await grpc.accessSecretVersionByPath({
      projectId,
      path: "/prod",
      name: "db",
      revision: "latest_enabled",
    });
    expect(latest.revision).toBe(4);
    expect(Buffer.from(latest.data).equals(v4)).toBe(true);
    const oldest = await grpc.accessSecretVersion({ secretId: dbId, revision: "1" });
    expect(Buffer.from(oldest.data).equals(v1)).toBe(true);
    expect(oldest.dataCrc32).toBe(crc32(v1));

    // The single-access version stays consumed across the restart.
    const consumed = await refusal(grpc.accessSecretVersion({ secretId: otpId, revision: "1" }));
    expect(consumed.code).toBe(Code.FailedPrecondition);

    const exit = await second.stop();
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it("never printed a payload, a master key or the admin token", () => {
    const lines = [...(first?.output ?? []), ...(second?.output ?? [])];
    // The scan covers real output: both starts and the calls above.
    const logs = [...(first?.logs() ?? []), ...(second?.logs() ?? [])];
    expect(logs.filter((l) => l.msg === "coffer is serving")).toHaveLength(2);
    expect(
      logs.filter((l) => l.method === "coffer.secretmanager.v1.SecretService/AccessSecretVersion")
        .length,
    ).toBeGreaterThanOrEqual(7);
    expect(masterKeys.length).toBeGreaterThan(0);
    expect(payloads).toHaveLength(6);

    const needles: { what: string; text: string }[] = [
      { what: "the admin token", text: first?.token ?? "" },
    ];
    expect(needles[0]?.text).toMatch(/^coffer_/);
    for (const { marker, payload } of payloads) {
      needles.push(
        { what: `marker ${marker}`, text: marker },
        { what: `${marker} payload as base64`, text: payload.toString("base64") },
        { what: `${marker} payload as hex`, text: payload.toString("hex") },
      );
    }
    for (const [i, key] of masterKeys.entries()) {
      const raw = Buffer.from(key, "base64");
      needles.push(
        { what: `master key ${i} (base64)`, text: key },
        { what: `master key ${i} (base64url)`, text: raw.toString("base64url") },
        { what: `master key ${i} (hex)`, text: raw.toString("hex") },
      );
    }
    const leaks = needles.flatMap(({ what, text }) =>
      lines
        .filter((line) => line.text.toLowerCase().includes(text.toLowerCase()))
        .map((line) => `${what} in ${line.stream}`),
    );
    expect(leaks).toEqual([]);
  });
});
