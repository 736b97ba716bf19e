import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { open, rewrap, versionAad } from "../crypto/envelope.ts";
import { createKeyFile, generateKey, type KeyRing, loadKeyFile } from "../crypto/key-ring.ts";
import { KeyRingHolder } from "../crypto/key-ring-holder.ts";
import type { Db } from "../db/client.ts";
import { nextWrappedOutside, replaceWrappedKeys } from "../db/wrapped-keys.ts";
import { backends } from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  expectDomainError,
  newSecret,
  query,
  textOf,
} from "../testing/domain-helpers.ts";
import { accessVersion } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret } from "./delete-secret.ts";
import { rotateMasterKey, rotateMasterKeyOnline } from "./rotate-keys.ts";
import { sweepRegion } from "./sweeper.ts";
import { deleteVersion } from "./version-state.ts";

const keyA = generateKey();
const keyB = generateKey();
const ringA: KeyRing = { activeId: "A", keys: new Map([["A", keyA]]) };
const ringBA: KeyRing = {
  activeId: "B",
  keys: new Map([
    ["B", keyB],
    ["A", keyA],
  ]),
};
const ringBOnly: KeyRing = { activeId: "B", keys: new Map([["B", keyB]]) };

interface Version {
  region: string;
  secretId: string;
  revision: number;
  payload: string;
}

interface StoredRow {
  secret_id: string;
  revision: number;
  key_id: string | null;
  wrapped_key: Uint8Array | null;
  ciphertext: Uint8Array | null;
}

const rowsOf = (db: Db) =>
  query<StoredRow>(
    db,
    sql`select secret_id, revision, key_id, wrapped_key, ciphertext from secret_versions order by secret_id, revision`,
  );

async function countUnder(db: Db, keyId: string): Promise<number> {
  const [row] = await query<{ n: number }>(
    db,
    sql`select count(*)::int as n from secret_versions where key_id = ${keyId}`,
  );
  return Number(row?.n);
}

/** `count` secrets with `perSecret` versions each; returns every version with its payload. */
async function populate(
  domain: DomainDeps,
  region: string,
  count: number,
  perSecret: number,
): Promise<Version[]> {
  const versions: Version[] = [];
  for (let s = 0; s < count; s++) {
    const first = `p-${randomBytes(6).toString("hex")}`;
    const { secret, firstVersion } = await newSecret(domain, { region }, first);
    versions.push({
      region,
      secretId: secret.id,
      revision: firstVersion?.revision ?? 1,
      payload: first,
    });
    for (let v = 1; v < perSecret; v++) {
      const payload = `p-${randomBytes(6).toString("hex")}`;
      const version = await addVersion(domain, secret.id, payload, { region });
      versions.push({ region, secretId: secret.id, revision: version.revision, payload });
    }
  }
  return versions;
}

const key = (v: { secretId: string; revision: number }) => `${v.secretId}/${v.revision}`;

describe.each(backends)("master key rotation on $name", (backend) => {
  const dbs = databasesFor(backend, ["main", "second"]);
  let holder: KeyRingHolder;
  let domain: DomainDeps;

  beforeAll(async () => {
    holder = new KeyRingHolder(ringA);
    domain = { ...(await dbs.open()), keyRing: holder.get };
  });
  afterAll(() => dbs.close());

  it("rewraps every data key under concurrent reads, with zero failed reads", async () => {
    const versions = [
      ...(await populate(domain, "main", 50, 5)),
      ...(await populate(domain, "second", 10, 5)),
    ];
    expect(versions).toHaveLength(300);

    // Destroyed versions (tombstones: no key id, wrapped key or ciphertext).
    const destroyed = versions.filter((_, i) => i % 15 === 3);
    for (const v of destroyed) {
      await deleteVersion(domain, caller, { ...v, revision: String(v.revision), etag: "" });
    }
    for (const region of ["main", "second"]) await sweepRegion(dbs.db(region), 0);
    // Scheduled for deletion and a deleted secret: restorable, so their
    // ciphertext stays and must be rewrapped too.
    const scheduled = versions.filter((_, i) => i % 15 === 7);
    for (const v of scheduled) {
      await deleteVersion(domain, caller, { ...v, revision: String(v.revision), etag: "" });
    }
    const deletedSecret = versions.filter((v) => v.secretId === versions[20]?.secretId);
    await deleteSecret(domain, caller, {
      region: "main",
      secretId: versions[20]?.secretId ?? "",
      etag: "",
    });
    // Destroyed while the rotation runs: must stay destroyed.
    const destroyedDuring = versions.filter((_, i) => i % 15 === 11);

    const gone = new Set(
      [...destroyed, ...scheduled, ...deletedSecret, ...destroyedDuring].map(key),
    );
    const readable = versions.filter((v) => !gone.has(key(v)));
    const live = versions.filter((v) => !new Set(destroyed.map(key)).has(key(v)));
    expect(readable.length).toBeGreaterThan(150);

    const before = new Map<string, StoredRow>();
    for (const region of ["main", "second"]) {
      for (const row of await rowsOf(dbs.db(region)))
        before.set(key({ secretId: row.secret_id, revision: row.revision }), row);
      expect(await countUnder(dbs.db(region), "B")).toBe(0);
    }
    expect([...before.values()].filter((r) => r.key_id === "A")).toHaveLength(live.length);
    expect([...before.values()].filter((r) => r.wrapped_key === null)).toHaveLength(
      destroyed.length,
    );

    // The ring is rolled out first (B active, A kept), then rows are rewrapped.
    holder.set(ringBA);
    let rotating = true;
    let batches = 0;
    let reads = 0;
    let readsDuringRotation = 0;
    const failures: string[] = [];
    const reader = async () => {
      while (rotating) {
        const v = readable[Math.floor(Math.random() * readable.length)];
        if (v === undefined) continue;
        try {
          const got = await accessVersion(domain, caller, {
            region: v.region,
            secretId: v.secretId,
            revision: String(v.revision),
          });
          if (textOf(got.data) !== v.payload) failures.push(`wrong payload for ${key(v)}`);
        } catch (err) {
          failures.push(`${key(v)}: ${(err as Error).message}`);
        }
        reads++;
        if (batches > 0 && rotating) readsDuringRotation++;
      }
    };
    // No timers in these loops: PGlite answers through microtasks only, so
    // while the readers spin, a timer would not fire until the rotation ends
    // (and a macrotask yield in a reader would let the rotation run alone).
    const destroyer = async () => {
      for (const v of destroyedDuring) {
        // What the sweeper does once a version's deletion window is over,
        // for this version only (a sweep would also purge the scheduled ones).
        await dbs
          .db(v.region)
          .execute(
            sql`update secret_versions set status = 'deleted', deleted_at = now(), key_id = null, wrapped_key = null, ciphertext = null where secret_id = ${v.secretId} and revision = ${v.revision}`,
          );
      }
    };
    const readers = [reader(), reader(), reader()];
    const destroying = destroyer();
    let result: Awaited<ReturnType<typeof rotateMasterKey>>;
    try {
      result = await rotateMasterKey(domain, caller, {
        batchSize: 20,
        onProgress: (p) => {
          if (!p.done) batches++;
        },
      });
      await destroying;
    } finally {
      rotating = false;
      await Promise.all(readers);
    }

    expect(failures).toEqual([]);
    expect(readsDuringRotation).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(readsDuringRotation - 1);
    expect(result.activeKeyId).toBe("B");
    expect(result.retiredKeyIds).toEqual(["A"]);
    expect(result.regions.map((r) => r.region)).toEqual(["main", "second"]);
    // Concurrently destroyed rows may have been rewrapped first, or not at all.
    expect(result.rewrapped).toBeGreaterThanOrEqual(live.length - destroyedDuring.length);
    expect(result.rewrapped).toBeLessThanOrEqual(live.length);

    const liveAfter = new Set(
      live.filter((v) => !new Set(destroyedDuring.map(key)).has(key(v))).map(key),
    );
    const byKey = new Map(versions.map((v) => [key(v), v]));
    let decrypted = 0;
    for (const region of ["main", "second"]) {
      const db = dbs.db(region);
      expect(await countUnder(db, "A")).toBe(0);
      for (const row of await rowsOf(db)) {
        const k = key({ secretId: row.secret_id, revision: row.revision });
        const old = before.get(k);
        if (!liveAfter.has(k)) {
          // Destroyed before or during the rotation: never brought back.
          expect({ k, key: row.key_id, wrapped: row.wrapped_key, ct: row.ciphertext }).toEqual({
            k,
            key: null,
            wrapped: null,
            ct: null,
          });
          continue;
        }
        // Only the wrapped key changed; the payload ciphertext is the same bytes.
        expect(row.key_id).toBe("B");
        expect(Buffer.from(row.ciphertext ?? [])).toEqual(Buffer.from(old?.ciphertext ?? [1]));
        expect(Buffer.from(row.wrapped_key ?? [])).not.toEqual(Buffer.from(old?.wrapped_key ?? []));
        const plain = open(
          {
            keyId: "B",
            wrappedKey: row.wrapped_key ?? new Uint8Array(),
            ciphertext: row.ciphertext ?? new Uint8Array(),
          },
          versionAad(row.secret_id, row.revision),
          ringBOnly,
        );
        expect(textOf(plain)).toBe(byKey.get(k)?.payload);
        decrypted++;
      }
    }
    expect(decrypted).toBe(liveAfter.size);

    // And through the domain, with a server holding only key B.
    const onlyB: DomainDeps = { ...domain, keyRing: () => ringBOnly };
    for (const v of readable) {
      const got = await accessVersion(onlyB, caller, {
        region: v.region,
        secretId: v.secretId,
        revision: String(v.revision),
      });
      expect(textOf(got.data)).toBe(v.payload);
    }

    // Running it again finds nothing left to do.
    const again = await rotateMasterKey(domain, caller);
    expect(again.rewrapped).toBe(0);
  });

  it("never overwrites a wrapped key that changed after it was read", async () => {
    const local = new KeyRingHolder(ringA);
    const d: DomainDeps = { ...domain, keyRing: local.get };
    await populate(d, "main", 1, 3);
    const db = dbs.db("main");
    const rows = await nextWrappedOutside(db, "B", undefined, 1000);
    const [destroyedRow, rewrappedRow, untouched] = rows.filter((r) => r.keyId === "A").slice(-3);
    if (!destroyedRow || !rewrappedRow || !untouched) throw new Error("expected 3 rows under A");

    // Meanwhile: one version destroyed, another rewrapped by someone else.
    await db.execute(
      sql`update secret_versions set key_id = null, wrapped_key = null, ciphertext = null where secret_id = ${destroyedRow.secretId} and revision = ${destroyedRow.revision}`,
    );
    const theirs = rewrap(rewrappedRow, ringBA);
    expect(await replaceWrappedKeys(db, [{ before: rewrappedRow, ...theirs }])).toBe(1);

    const changes = [destroyedRow, rewrappedRow, untouched].map((r) => ({
      before: r,
      ...rewrap(r, ringBA),
    }));
    expect(await replaceWrappedKeys(db, changes)).toBe(1);

    const stored = new Map(
      (await rowsOf(db)).map((r) => [key({ secretId: r.secret_id, revision: r.revision }), r]),
    );
    expect(stored.get(key(destroyedRow))).toMatchObject({ key_id: null, wrapped_key: null });
    expect(Buffer.from(stored.get(key(rewrappedRow))?.wrapped_key ?? [])).toEqual(
      Buffer.from(theirs.wrappedKey),
    );
    expect(stored.get(key(untouched))?.key_id).toBe("B");
  });

  it("refuses, naming the key, when rows are wrapped with a key the ring lacks", async () => {
    const other = databasesFor(backend, ["only"]);
    try {
      const ringC: KeyRing = { activeId: "C", keys: new Map([["C", generateKey()]]) };
      const d: DomainDeps = { ...(await other.open()), keyRing: () => ringC };
      await populate(d, "only", 2, 2);
      const ringD: KeyRing = { activeId: "D", keys: new Map([["D", generateKey()]]) };
      await expectDomainError(
        rotateMasterKey({ ...d, keyRing: () => ringD }, caller),
        "failed_precondition",
        'region only: data keys are wrapped with master key(s) the ring lacks: "C" (4 rows)',
      );
      expect(await countUnder(other.db("only"), "C")).toBe(4);
    } finally {
      await other.close();
    }
  });
});

describe.each(backends)("online master key rotation with a key file on $name", (backend) => {
  const dbs = databasesFor(backend, ["main"]);
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "coffer-rotate-"));
  });
  afterEach(() => dbs.close());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("adds a key to the file, makes it active in the running ring, and rewraps", async () => {
    const keyFile = join(dir, `${backend.name}-keys.json`);
    const first = await createKeyFile(keyFile);
    const holder = new KeyRingHolder(first);
    const domain: DomainDeps = { ...(await dbs.open()), keyRing: holder.get };
    const versions = await populate(domain, "main", 6, 5);

    const [result, concurrent] = await Promise.allSettled([
      rotateMasterKeyOnline(domain, caller, { holder, keyFile }),
      rotateMasterKeyOnline(domain, caller, { holder, keyFile }),
    ]);
    if (result?.status !== "fulfilled")
      throw new Error(`rotation failed: ${String(result?.reason)}`);
    await expectDomainError(
      Promise.reject(
        concurrent?.status === "rejected" ? concurrent.reason : new Error("ran twice"),
      ),
      "failed_precondition",
      "already running",
    );

    const file = await loadKeyFile(keyFile);
    expect(file.keys.size).toBe(2);
    expect(file.activeId).not.toBe(first.activeId);
    expect(result.value).toMatchObject({
      activeKeyId: file.activeId,
      addedKeyId: file.activeId,
      rewrapped: 30,
      retiredKeyIds: [first.activeId],
    });
    expect(holder.get().activeId).toBe(file.activeId);
    expect(await countUnder(dbs.db(), first.activeId)).toBe(0);

    const onlyNew: DomainDeps = {
      ...domain,
      keyRing: () => ({
        activeId: file.activeId,
        keys: new Map([[file.activeId, file.keys.get(file.activeId) ?? Buffer.alloc(0)]]),
      }),
    };
    for (const v of versions) {
      const got = await accessVersion(onlyNew, caller, { ...v, revision: String(v.revision) });
      expect(textOf(got.data)).toBe(v.payload);
    }
  });

  it("without a key file, rewraps to the ring's active key and leaves the ring alone", async () => {
    const holder = new KeyRingHolder(ringA);
    const domain: DomainDeps = { ...(await dbs.open()), keyRing: holder.get };
    await populate(domain, "main", 2, 2);
    holder.set(ringBA);
    const result = await rotateMasterKeyOnline(domain, caller, { holder });
    expect(result).toMatchObject({ activeKeyId: "B", rewrapped: 4, retiredKeyIds: ["A"] });
    expect(result.addedKeyId).toBeUndefined();
    expect(holder.get()).toBe(ringBA);
  });
});
