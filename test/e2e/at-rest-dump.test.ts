import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import {
  AdminService,
  createCofferClient,
  createCofferTransport,
  EphemeralAction,
  Role,
  SecretType,
} from "@coffer/client";
import { createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken, type ServerProcess, startServer } from "../support/server-process.ts";
import { runUnless } from "../support/skip.ts";
import { makeTempDir, removeTempDir } from "../support/temp-dir.ts";

/**
 * At rest: after a scenario whose payloads hold known random markers (text,
 * JSON, key_value, a single-access version, a disabled one) and whose tokens
 * were created and used, a pg_dump of the database holds none of the
 * markers (as text, hex or base64 of the raw bytes) and none of the tokens.
 * Runs whenever TEST_DATABASE_URL is set; under CI a missing one fails.
 */

const testDatabaseUrl = process.env.TEST_DATABASE_URL;
if (process.env.CI && !testDatabaseUrl) {
  throw new Error("CI is set but TEST_DATABASE_URL is not: the at-rest test must run in CI");
}

const PG_DUMP = existsSync("/usr/lib/postgresql/15/bin/pg_dump")
  ? "/usr/lib/postgresql/15/bin/pg_dump"
  : "pg_dump";

/** A marker: random, so that it can only be in the dump if Coffer wrote it there. */
const marker = (label: string) => `${label}${randomBytes(12).toString("hex")}`;

/** The forms a value could take in a dump: text, hex (bytea), base64 (three alignments). */
function encodings(value: string): string[] {
  const raw = Buffer.from(value, "utf8");
  const forms = [value, raw.toString("hex"), raw.toString("base64").replace(/=+$/, "")];
  // base64 of the value at another offset inside a larger blob.
  for (const shift of [1, 2]) {
    const shifted = Buffer.concat([Buffer.alloc(shift), raw]).toString("base64");
    forms.push(shifted.slice(4, -4));
  }
  return forms;
}

const onPostgres = runUnless(
  testDatabaseUrl ? undefined : "needs TEST_DATABASE_URL (pg_dump of a Postgres database)",
);

describe("pg_dump after a scenario", onPostgres, () => {
  let admin: postgres.Sql | undefined;
  let databaseName: string | undefined;
  let databaseUrl = "";
  let dataDir: string | undefined;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    if (!testDatabaseUrl) throw new Error("unreachable: the suite is skipped");
    admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
    databaseName = `coffer_atrest_${randomBytes(6).toString("hex")}`;
    await admin.unsafe(`create database ${databaseName}`);
    const url = new URL(testDatabaseUrl);
    url.pathname = `/${databaseName}`;
    databaseUrl = url.toString();
    dataDir = await makeTempDir("at-rest");
    server = await startServer({
      env: {
        COFFER_DATABASE_URL: databaseUrl,
        COFFER_MASTER_KEYS: `atrest-1:${randomBytes(32).toString("base64")}`,
        COFFER_BOOTSTRAP_TOKEN: newToken(),
        COFFER_DATA_DIR: dataDir,
      },
    });
  });

  afterAll(async () => {
    server?.kill();
    if (server) await server.exited;
    if (admin !== undefined && databaseName !== undefined) {
      await admin.unsafe(`drop database if exists ${databaseName} with (force)`);
    }
    await admin?.end();
    await removeTempDir(dataDir);
  });

  it("holds no payload marker and no token", async () => {
    if (server === undefined || dataDir === undefined) throw new Error("no server");
    const adminToken = server.token;
    const transport = createCofferTransport({
      url: server.grpcUrl,
      protocol: "grpc",
      token: adminToken,
    });
    const adminClient = createClient(AdminService, transport);
    const root = createCofferClient({ url: server.grpcUrl, protocol: "grpc", token: adminToken });

    const project = (await adminClient.createProject({ name: "at-rest" })).project?.id ?? "";
    const writer = await adminClient.createToken({
      name: "writer",
      grants: [{ projectId: project, role: Role.FULL_ACCESS, pathPrefix: "/" }],
    });
    const reader = await adminClient.createToken({
      name: "reader",
      grants: [{ projectId: project, role: Role.SECRET_ACCESS, pathPrefix: "/app" }],
    });
    const tokens = [adminToken, writer.value, reader.value];
    const rw = createCofferClient({ url: server.httpUrl, token: writer.value });
    const ro = createCofferClient({ url: server.grpcUrl, protocol: "grpc", token: reader.value });

    // A marker in a secret's name: metadata, stored in clear by design; it
    // must be found, which shows the search works (see the last assertion).
    const nameMarker = marker("nm");
    const markers: string[] = [];
    const payload = (label: string, make: (m: string) => string) => {
      const m = marker(label);
      markers.push(m);
      return Buffer.from(make(m));
    };

    const text = await rw.createSecret({
      projectId: project,
      path: "/app",
      name: `text-${nameMarker}`,
      firstVersion: { data: payload("tx", (m) => `plain text ${m}`) },
    });
    await rw.createSecretVersion({
      secretId: text.secret?.id ?? "",
      data: payload("t2", (m) => `second ${m}`),
    });
    const json = await rw.createSecret({
      projectId: project,
      path: "/app",
      name: "db",
      type: SecretType.DATABASE_CREDENTIALS,
      firstVersion: {
        data: payload("db", (m) =>
          JSON.stringify({
            engine: "postgres",
            username: "u",
            password: m,
            host: "h",
            dbname: "d",
            port: "5432",
          }),
        ),
      },
    });
    const kv = await rw.createSecret({
      projectId: project,
      path: "/app",
      name: "env",
      type: SecretType.KEY_VALUE,
      firstVersion: { data: payload("kv", (m) => JSON.stringify({ API_KEY: m, DEBUG: true })) },
    });
    const single = await rw.createSecret({
      projectId: project,
      path: "/app",
      name: "once",
      ephemeralPolicy: { expiresOnceAccessed: true, action: EphemeralAction.DISABLE },
      firstVersion: { data: payload("sa", (m) => `single ${m}`) },
    });
    const disabled = await rw.createSecret({
      projectId: project,
      path: "/app",
      name: "off",
      firstVersion: { data: payload("ds", (m) => `disabled ${m}`) },
    });
    await rw.disableSecretVersion({ secretId: disabled.secret?.id ?? "", revision: "1" });
    // Reads through each token, so that the tokens have been used.
    for (const secret of [text, json, kv, single]) {
      await ro.accessSecretVersion({
        secretId: secret.secret?.id ?? "",
        revision: "latest_enabled",
      });
    }
    await root.listSecrets({ projectId: project });

    const file = path.join(dataDir, "dump.sql");
    await promisify(execFile)(PG_DUMP, ["--no-owner", "--file", file, databaseUrl], {
      timeout: 60_000,
    });
    const dump = await readFile(file, "utf8");
    // The dump is real: it holds the secrets table and their names.
    expect(dump).toContain("COPY public.secrets");
    expect(dump).toContain(nameMarker);

    for (const m of markers) {
      for (const form of encodings(m))
        expect(dump.includes(form), `payload marker as ${form}`).toBe(false);
    }
    for (const token of tokens) {
      const secretPart = token.slice("coffer_".length);
      for (const form of [
        token,
        secretPart,
        secretPart.slice(0, 20),
        secretPart.slice(-20),
        ...encodings(token),
      ]) {
        expect(dump.includes(form), "a token in the dump").toBe(false);
      }
    }
  });
});
