import { randomBytes } from "node:crypto";
import { PGlite, types } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "./client.ts";
import { pgErrorCode } from "./errors.ts";
import { byteaFromHex } from "./pglite-statements.ts";
import { prepareStatement, render, rowsOf, sessionOf } from "./raw-sql.ts";

const p = (name: string) => sql.placeholder(name);

/** A statement with a parameter of each kind the access statements send, and a row of each kind they read. */
const statement = render(sql`select x.id, x.n, x.blob, x.at, x.at::text as at_text, x.flags,
    ${p("ids")}::uuid[] as ids, ${p("note")}::text as note
  from t x where x.n = any(${p("ns")}::int[]) order by x.n`);

describe("named statements on PGlite (prepareStatement)", () => {
  let client: PGlite;
  let db: Db;
  const logged: string[] = [];
  beforeAll(async () => {
    client = await PGlite.create("memory://", { parsers: { [types.BYTEA]: byteaFromHex } });
    db = drizzle({
      client,
      logger: { logQuery: (q) => void logged.push(q) },
    }) as unknown as Db;
    await client.exec(`create table t (id uuid primary key, n int unique, blob bytea,
      at timestamptz not null default now(), flags boolean[]);
      create function notify_t() returns trigger language plpgsql as
        $$ begin perform pg_notify('t_changed', new.n::text); return new; end $$;
      create trigger t_notify after insert on t for each row execute function notify_t();`);
  });
  afterAll(() => client?.close());

  const insert = () =>
    prepareStatement(
      db,
      render(sql`insert into t (id, n, blob, flags)
        select u.*, array[${p("flag")}::boolean]
        from unnest(${p("ids")}::uuid[], ${p("ns")}::int[], ${p("blobs")}::bytea[]) u returning n`),
      "test_insert",
    );

  it("answers the rows drizzle's unnamed statement answers, parsed alike", async () => {
    const blobs = [randomBytes(1024), Buffer.alloc(0), randomBytes(37)];
    const ids = blobs.map(() => crypto.randomUUID());
    await insert().execute({ ids, ns: [1, 2, 3], blobs, flag: true });
    const values = { ids, note: 'it\'s \\ "quoted"', ns: [3, 1, 2] };
    const named = rowsOf<Record<string, unknown>>(
      await prepareStatement(db, statement, "test_select").execute(values),
    );
    const unnamed = rowsOf<Record<string, unknown>>(
      await sessionOf(db).prepareQuery(statement, undefined, undefined, false).execute(values),
    );
    expect(named).toHaveLength(3);
    expect(named).toEqual(unnamed);
    expect(named.map((r) => Buffer.from(r.blob as Uint8Array))).toEqual([
      blobs[0],
      blobs[1],
      blobs[2],
    ]);
    expect(named[0]?.blob).toBeInstanceOf(Uint8Array);
    // Date and time types as text, as drizzle's raw execute gives them.
    expect(typeof named[0]?.at).toBe("string");
    expect(named[0]?.flags).toEqual([true]);
    expect(named[0]?.note).toBe(values.note);
    expect(logged.filter((q) => q === statement.sql).length).toBeGreaterThanOrEqual(2);
  });

  it("is parsed once: a second call does not send its text again", async () => {
    const stmt = prepareStatement(db, statement, "test_parsed_once");
    await stmt.execute({ ids: [], note: null, ns: [1] });
    const [before] = rowsOf<{ n: number }>(
      await db.execute(
        sql`select count(*)::int as n from pg_prepared_statements where name = 'test_parsed_once'`,
      ),
    );
    expect(before?.n).toBe(1);
    const rows = rowsOf(await stmt.execute({ ids: [], note: "x", ns: [2] }));
    expect(rows).toHaveLength(1);
  });

  it("fails a call with the database's SQLSTATE, and serves the next", async () => {
    const stmt = insert();
    const id = crypto.randomUUID();
    const err = await stmt
      .execute({ ids: [id], ns: [1], blobs: [Buffer.from("x")], flag: false })
      .catch((e: unknown) => e);
    expect(pgErrorCode(err)).toBe("23505");
    const rows = rowsOf(
      await stmt.execute({ ids: [id], ns: [10], blobs: [Buffer.from("x")], flag: false }),
    );
    expect(rows).toEqual([{ n: 10 }]);
    expect(client.isInTransaction()).toBe(false);
  });

  it("waits for a transaction in progress instead of running inside it", async () => {
    const stmt = prepareStatement(db, statement, "test_after_tx");
    await stmt.execute({ ids: [], note: null, ns: [] });
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const tx = db.transaction(async (t) => {
      await t.execute(sql`insert into t (id, n) values (gen_random_uuid(), 20)`);
      await held;
      throw new Error("roll back");
    });
    // The transaction has begun; the statement must not see its row, nor join it.
    await new Promise((r) => setTimeout(r, 20));
    const read = stmt.execute({ ids: [], note: null, ns: [20] });
    await new Promise((r) => setTimeout(r, 20));
    release();
    await expect(tx).rejects.toThrow("roll back");
    expect(rowsOf(await read)).toEqual([]);
  });

  it("delivers the notifications its statement raises to listeners", async () => {
    const heard: string[] = [];
    const unlisten = await client.listen("t_changed", (payload) => void heard.push(payload));
    await insert().execute({
      ids: [crypto.randomUUID()],
      ns: [30],
      blobs: [Buffer.from("y")],
      flag: true,
    });
    await new Promise((r) => setTimeout(r, 20));
    await unlisten();
    expect(heard).toEqual(["30"]);
  });

  it("decodes bytea hex as PGlite's own parser does", () => {
    for (const bytes of [Buffer.alloc(0), randomBytes(1), randomBytes(4096)]) {
      const text = `\\x${bytes.toString("hex")}`;
      expect(Buffer.from(byteaFromHex(text))).toEqual(bytes);
      expect(byteaFromHex(text)).toEqual(types.parsers[types.BYTEA]?.(text, types.BYTEA));
    }
  });
});
