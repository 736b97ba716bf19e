/**
 * Baseline of the writes benchmark: no HTTP, no auth, no audit, no outbox;
 * one INSERT of a version row (a fresh data key, wrapped, and the 1 KiB
 * payload encrypted with AES-256-GCM, as Coffer does) per call, with the
 * `postgres` driver (pool of 10, Coffer's default) from `concurrency`
 * workers. Started by bench/run.ts (settings in BENCH_LOOP); prints the
 * bench/support/loop.ts protocol.
 */
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { loopSettings, runLoop } from "../support/loop.ts";
import { ECHO_DATA } from "./echo-payload.ts";
import { encryptVersion, VERSIONS_TABLE } from "./envelope.ts";

const settings = loopSettings();
const table = `bench_insert_loop_${process.pid}`;
const sql = postgres(settings.target, { max: 10, onnotice: () => {} });
const secretId = randomUUID();
await sql.unsafe(VERSIONS_TABLE(table));
try {
  let revision = 0;
  const insert = async () => {
    revision += 1;
    const r = revision;
    const { keyId, wrappedKey, ciphertext } = encryptVersion(secretId, r, ECHO_DATA);
    await sql`
      insert into ${sql(table)} (secret_id, revision, status, data_crc32, key_id, wrapped_key, ciphertext)
      values (${secretId}, ${r}, 'enabled', ${0}, ${keyId}, ${wrappedKey}, ${ciphertext})`;
  };
  await insert();
  await runLoop(settings, insert, "inserted 1 KiB versions");
  const [count] = await sql<{ n: string }[]>`select count(*)::text as n from ${sql(table)}`;
  process.stderr.write(`insert-loop: ${count?.n} rows\n`);
} finally {
  await sql.unsafe(`drop table if exists ${table}`);
  await sql.end();
}
