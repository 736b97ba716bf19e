import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey, type KeyRing, loadKeyFile } from "../crypto/key-ring.ts";
import type { Db } from "../db/client.ts";
import { accessVersion } from "../domain/access-version.ts";
import type { DomainDeps } from "../domain/context.ts";
import type { RunningServer } from "../server.ts";
import {
  ADMIN_CALLER,
  dropPostgresDatabase,
  postgresBackend,
  startTestServer,
} from "../testing/backends.ts";
import { addVersion, newSecret, query, textOf } from "../testing/domain-helpers.ts";
import { runUnless } from "../testing/skip.ts";

const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));
const mainTs = fileURLToPath(new URL("../main.ts", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `coffer-server rotate-keys ...args` as its own process with only `env` as settings. */
function rotateKeys(args: string[], env: Record<string, string>): Promise<Run> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("COFFER_")),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", mainTs, "rotate-keys", ...args],
      { cwd: repoRoot, env: { ...inherited, ...env }, timeout: 90_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function countUnder(db: Db, keyId: string): Promise<number> {
  const [row] = await query<{ n: number }>(
    db,
    sql`select count(*)::int as n from secret_versions where key_id = ${keyId}`,
  );
  return Number(row?.n);
}

/** Creates `count` secrets with two versions each; returns them with their payloads. */
async function populate(domain: DomainDeps, count: number) {
  const versions: { secretId: string; revision: number; payload: string }[] = [];
  for (let i = 0; i < count; i++) {
    const { secret } = await newSecret(domain, {}, `first-${i}`);
    versions.push({ secretId: secret.id, revision: 1, payload: `first-${i}` });
    const v = await addVersion(domain, secret.id, `second-${i}`);
    versions.push({ secretId: secret.id, revision: v.revision, payload: `second-${i}` });
  }
  return versions;
}

async function expectReadable(
  domain: DomainDeps,
  versions: { secretId: string; revision: number; payload: string }[],
) {
  for (const v of versions) {
    const got = await accessVersion(domain, ADMIN_CALLER, {
      region: "",
      secretId: v.secretId,
      revision: String(v.revision),
    });
    expect(textOf(got.data)).toBe(v.payload);
  }
}

const onlyKey = (ring: KeyRing, id: string): KeyRing => {
  const key = ring.keys.get(id);
  if (key === undefined) throw new Error(`no key ${id}`);
  return { activeId: id, keys: new Map([[id, key]]) };
};

describe("coffer-server rotate-keys on the embedded database", () => {
  let dir: string;
  let keyFile: string;
  const settings = () => ({ COFFER_DATA_DIR: dir, COFFER_LOG_LEVEL: "silent" });
  const embedded = () =>
    startTestServer({
      databases: { local: { driver: "pglite", dataDir: join(dir, "regions", "local") } },
      dataDir: dir,
      masterKeys: undefined,
      masterKeyFile: keyFile,
    });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "coffer-rotate-cli-"));
    keyFile = join(dir, "master-keys.json");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("adds an active key to the key file and rewraps every data key", {
    timeout: 240_000,
  }, async () => {
    // A first start creates the database and the key file; data goes in.
    let server: RunningServer = await embedded();
    const versions = await populate(server.domain, 10);
    const oldKey = server.domain.keyRing().activeId;
    await server.stop();

    const run = await rotateKeys([], settings());
    expect(run.stderr).toContain("region local: done, 20 rows rewrapped");
    expect(run.code).toBe(0);

    const ring = await loadKeyFile(keyFile);
    expect(ring.keys.size).toBe(2);
    expect(ring.activeId).not.toBe(oldKey);
    expect(ring.keys.has(oldKey)).toBe(true);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(run.stderr).toContain(`added master key ${ring.activeId} to ${keyFile}`);
    expect(run.stderr).toContain("total: 20 rows rewrapped in 1 region(s)");
    expect(run.stdout).toBe(
      `Active master key: ${ring.activeId}\nRows rewrapped: 20 (local: 20)\nNo row depends on key(s) ${oldKey} any more; you may remove them from the ring once every replica runs with the new ring.\n`,
    );

    // The restarted server finds the new ring; no row needs the old key, and
    // every version decrypts with the new key alone.
    server = await embedded();
    try {
      expect(server.domain.keyRing().activeId).toBe(ring.activeId);
      const db = server.domain.regions.resolve("").db;
      expect(await countUnder(db, oldKey)).toBe(0);
      expect(await countUnder(db, ring.activeId)).toBe(20);
      await expectReadable(
        { ...server.domain, keyRing: () => onlyKey(ring, ring.activeId) },
        versions,
      );

      // While the server holds the database, the command refuses and changes nothing.
      const text = readFileSync(keyFile, "utf8");
      const busy = await rotateKeys([], settings());
      expect(busy.code).toBe(2);
      expect(busy.stderr).toContain(
        `the embedded database folder ${join(dir, "regions", "local")} is in use by another process (pid ${process.pid}`,
      );
      expect(readFileSync(keyFile, "utf8")).toBe(text);
    } finally {
      await server.stop();
    }

    // --rewrap-only adds no key and finds nothing left to do.
    const again = await rotateKeys(["--rewrap-only"], settings());
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(
      `Active master key: ${ring.activeId}\nRows rewrapped: 0 (local: 0)`,
    );
    expect((await loadKeyFile(keyFile)).keys.size).toBe(2);
  });

  it("explains its usage, and refuses unknown arguments", { timeout: 60_000 }, async () => {
    const help = await rotateKeys(["--help"], settings());
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: coffer-server rotate-keys");
    expect(help.stdout).toContain("stop the server first");
    const bad = await rotateKeys(["--frobnicate"], settings());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown argument "--frobnicate"');
  });

  it("refuses a data folder without a database", { timeout: 60_000 }, async () => {
    const empty = mkdtempSync(join(tmpdir(), "coffer-rotate-empty-"));
    try {
      const run = await rotateKeys([], { COFFER_DATA_DIR: empty });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("no embedded database at");
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("on Postgres with a key file, will not add a key and rewrap in one go", async () => {
    const run = await rotateKeys([], {
      COFFER_DATABASE_URL: "postgres://127.0.0.1:1/unused",
      COFFER_MASTER_KEY_FILE: keyFile,
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("run rotate-keys --add-key, give every replica the new key file");
  });
});

const onPostgres = runUnless(postgresBackend ? undefined : "needs TEST_DATABASE_URL (Postgres)");

describe("coffer-server rotate-keys on Postgres", onPostgres, () => {
  it("rewraps under a live server that runs with the new ring", { timeout: 240_000 }, async () => {
    const url = (await postgresBackend?.freshUrl?.()) ?? "";
    const a = `A:${generateKey().toString("base64")}`;
    const b = `B:${generateKey().toString("base64")}`;
    const postgres = { local: { driver: "postgres" as const, url, poolSize: 4 } };
    try {
      let server = await startTestServer({ databases: postgres, masterKeys: a });
      const versions = await populate(server.domain, 10);
      await server.stop();
      // Rolled out: the server runs with B active and A kept, then rotation.
      server = await startTestServer({ databases: postgres, masterKeys: `${b},${a}` });
      try {
        const run = await rotateKeys([], {
          COFFER_DATABASE_URL: url,
          COFFER_MASTER_KEYS: `${b},${a}`,
        });
        expect(run.stderr).toContain("region local: done, 20 rows rewrapped");
        expect(run.code).toBe(0);
        expect(run.stdout).toContain(
          "Active master key: B\nRows rewrapped: 20 (local: 20)\nNo row depends on key(s) A any more",
        );
        const db = server.domain.regions.resolve("").db;
        expect(await countUnder(db, "A")).toBe(0);
        const ring = server.domain.keyRing();
        await expectReadable({ ...server.domain, keyRing: () => onlyKey(ring, "B") }, versions);
      } finally {
        await server.stop();
      }
    } finally {
      await dropPostgresDatabase(url);
    }
  });
});
