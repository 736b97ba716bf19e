import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../db/client.ts";
import { backends } from "../testing/backends.ts";
import {
  addVersion,
  caller,
  databasesFor,
  newSecret,
  query,
  textOf,
} from "../testing/domain-helpers.ts";
import { accessVersion } from "./access-version.ts";
import type { DomainDeps } from "./context.ts";
import { deleteSecret } from "./delete-secret.ts";
import { getVersion } from "./read-versions.ts";
import { deleteVersion, disableVersion } from "./version-state.ts";

/**
 * The ways a payload could sit in a row as row_to_json prints it: as text,
 * as hex (how bytea prints), or as base64 at any of the three alignments
 * (the groups touching neighbouring bytes are left out).
 */
function encodingsOf(marker: string): { name: string; needle: string; caseSensitive: boolean }[] {
  const bytes = Buffer.from(marker, "utf8");
  const found = [
    { name: "text", needle: marker, caseSensitive: false },
    { name: "hex", needle: bytes.toString("hex"), caseSensitive: false },
  ];
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.concat([Buffer.alloc(shift), bytes]).toString("base64");
    const needle = b64.slice(shift === 0 ? 0 : 4, -4);
    found.push({ name: `base64+${shift}`, needle, caseSensitive: true });
  }
  return found;
}

/** Which encodings of `marker` occur in `text`. */
function leaks(text: string, marker: string): string[] {
  const lower = text.toLowerCase();
  return encodingsOf(marker)
    .filter((e) =>
      e.caseSensitive ? text.includes(e.needle) : lower.includes(e.needle.toLowerCase()),
    )
    .map((e) => e.name);
}

/** Every row of every table in the public schema, as row_to_json text, by table. */
async function dumpPublicSchema(db: Db): Promise<Map<string, string[]>> {
  const tables = await query<{ table_name: string }>(
    db,
    sql`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`,
  );
  const dump = new Map<string, string[]>();
  for (const { table_name: name } of tables) {
    const ident = sql.raw(`"${name.replaceAll('"', '""')}"`);
    const rows = await query<{ j: string }>(
      db,
      sql`select row_to_json(t)::text as j from ${ident} t`,
    );
    dump.set(
      name,
      rows.map((r) => r.j),
    );
  }
  return dump;
}

/** Swaps the sealed payloads (key id, wrapped key, ciphertext, checksum) of two version rows. */
async function swapSealed(
  db: Db,
  a: { secretId: string; revision: number },
  b: { secretId: string; revision: number },
): Promise<void> {
  await db.execute(sql`
    update secret_versions v set
      key_id = o.key_id, wrapped_key = o.wrapped_key, ciphertext = o.ciphertext, data_crc32 = o.data_crc32
    from secret_versions o
    where (v.secret_id = ${a.secretId} and v.revision = ${a.revision}
           and o.secret_id = ${b.secretId} and o.revision = ${b.revision})
       or (v.secret_id = ${b.secretId} and v.revision = ${b.revision}
           and o.secret_id = ${a.secretId} and o.revision = ${a.revision})`);
}

describe("the leak detector", () => {
  it("finds a marker as text, hex or base64 at any alignment", () => {
    const marker = `PLAINTEXT-MARKER-${randomBytes(8).toString("hex")}`;
    const bytes = Buffer.from(marker);
    expect(leaks(`{"a":"${marker}"}`, marker)).toContain("text");
    expect(leaks(`{"a":"\\\\x00${bytes.toString("hex")}"}`, marker)).toEqual(["hex"]);
    expect(leaks(`{"a":"\\\\X${bytes.toString("hex").toUpperCase()}"}`, marker)).toEqual(["hex"]);
    for (let shift = 0; shift < 3; shift++) {
      const b64 = Buffer.concat([randomBytes(shift), bytes, randomBytes(2)]).toString("base64");
      expect(leaks(`{"a":"${b64}"}`, marker)).toContain(`base64+${shift}`);
    }
    expect(leaks(`{"a":"${randomBytes(64).toString("hex")}"}`, marker)).toEqual([]);
  });
});

describe.each(backends)("payloads at rest on $name", (backend) => {
  const dbs = databasesFor(backend);
  let domain: DomainDeps;
  beforeAll(async () => {
    domain = await dbs.open();
  });
  afterAll(() => dbs.close());

  const access = async (secretId: string, revision: string) =>
    textOf((await accessVersion(domain, caller, { region: "", secretId, revision })).data);

  it("stores no payload in any table, in any encoding", async () => {
    const marker = `PLAINTEXT-MARKER-${randomBytes(16).toString("hex")}`;
    // Metadata is stored as it is sent: the control that shows the scan looks.
    const control = `DESCRIPTION-MARKER-${randomBytes(16).toString("hex")}`;
    const ref = (secretId: string, revision: string) => ({
      region: "",
      secretId,
      revision,
      etag: "",
    });

    const { secret: opaque } = await newSecret(domain, { description: control }, marker);
    await addVersion(domain, opaque.id, `${marker}\n${marker}`);
    await addVersion(domain, opaque.id, marker.repeat(1000), { enabled: false });
    await addVersion(domain, opaque.id, `prefix ${marker}`);
    await disableVersion(domain, caller, ref(opaque.id, "1"));
    await deleteVersion(domain, caller, ref(opaque.id, "4"));
    const { secret: kv } = await newSecret(
      domain,
      { type: "key_value" },
      JSON.stringify({ token: marker, n: 1 }),
    );
    const { secret: creds } = await newSecret(
      domain,
      { type: "basic_credentials" },
      JSON.stringify({ username: "app", password: marker }),
    );
    const { secret: once } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "disable" } },
      marker,
    );
    const { secret: doomed } = await newSecret(domain, {}, `${marker}!`);
    await deleteSecret(domain, caller, { region: "", secretId: doomed.id, etag: "" });

    // The scenario is real: every payload is there to be read.
    expect(await access(opaque.id, "2")).toBe(`${marker}\n${marker}`);
    expect(await access(kv.id, "1")).toContain(marker);
    expect(await access(creds.id, "1")).toContain(marker);
    expect(await access(once.id, "1")).toBe(marker);
    expect(
      (await getVersion(domain, caller, { region: "", secretId: once.id, revision: "1" }))
        .consumedAt,
    ).not.toBeNull();

    const dump = await dumpPublicSchema(dbs.db());
    expect([...dump.keys()]).toEqual(expect.arrayContaining(["secrets", "secret_versions"]));
    const versions = dump.get("secret_versions") ?? [];
    expect(versions.length).toBeGreaterThanOrEqual(8);
    for (const row of versions) expect(row).toMatch(/"ciphertext":"\\\\x[0-9a-f]{56,}"/);

    const found: string[] = [];
    for (const [table, rows] of dump) {
      for (const row of rows) {
        for (const how of leaks(row, marker)) found.push(`${table}: ${how}`);
      }
    }
    expect(found).toEqual([]);
    expect(
      (dump.get("secrets") ?? []).filter((row) => leaks(row, control).includes("text")),
    ).toHaveLength(1);
  });

  it("refuses a ciphertext moved to another version's row instead of serving it", async () => {
    const { secret: a } = await newSecret(domain, {}, "payload-one");
    await addVersion(domain, a.id, "payload-two");
    const { secret: b } = await newSecret(domain, {}, "payload-of-b");
    const db = dbs.db();

    // Two revisions of one secret.
    await swapSealed(db, { secretId: a.id, revision: 1 }, { secretId: a.id, revision: 2 });
    await expect(access(a.id, "1")).rejects.toThrow("payload failed authentication");
    await expect(access(a.id, "2")).rejects.toThrow("payload failed authentication");
    await swapSealed(db, { secretId: a.id, revision: 1 }, { secretId: a.id, revision: 2 });
    expect(await access(a.id, "1")).toBe("payload-one");
    expect(await access(a.id, "2")).toBe("payload-two");

    // The same revision of two secrets.
    await swapSealed(db, { secretId: a.id, revision: 1 }, { secretId: b.id, revision: 1 });
    await expect(access(a.id, "1")).rejects.toThrow("payload failed authentication");
    await expect(access(b.id, "1")).rejects.toThrow("payload failed authentication");
    await swapSealed(db, { secretId: a.id, revision: 1 }, { secretId: b.id, revision: 1 });
    expect(await access(b.id, "1")).toBe("payload-of-b");
  });

  it("does not consume a single-access version whose payload fails to decrypt", async () => {
    const { secret: once } = await newSecret(
      domain,
      { ephemeralPolicy: { expiresOnceAccessed: true, action: "delete" } },
      "read once",
    );
    const { secret: other } = await newSecret(domain, {}, "other");
    const db = dbs.db();
    const one = { secretId: once.id, revision: 1 };
    const two = { secretId: other.id, revision: 1 };

    await swapSealed(db, one, two);
    await expect(access(once.id, "1")).rejects.toThrow("payload failed authentication");
    const version = await getVersion(domain, caller, {
      region: "",
      secretId: once.id,
      revision: "1",
    });
    expect(version).toMatchObject({ status: "enabled", consumedAt: null });

    await swapSealed(db, one, two);
    expect(await access(once.id, "1")).toBe("read once");
    await expect(access(once.id, "1")).rejects.toMatchObject({ kind: "failed_precondition" });
  });
});
