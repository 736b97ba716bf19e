/**
 * Baseline (c) of the access benchmark: no HTTP, no auth, no audit; a
 * primary-key select of one version row (1 KiB ciphertext) with the
 * `postgres` driver (pool of 10, Coffer's default) from `concurrency`
 * workers, and the AES-256-GCM unwrap + decrypt of each row. Started by
 * bench/run.ts (settings in BENCH_LOOP); prints the bench/support/loop.ts
 * protocol.
 */
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { loopSettings, runLoop } from "../support/loop.ts";
import { ECHO_DATA } from "./echo-payload.ts";
import { decryptVersion, encryptVersion, VERSIONS_TABLE } from "./envelope.ts";

const settings = loopSettings();
const ROWS = 1000;
const table = `bench_pg_loop_${process.pid}`;
const sql = postgres(settings.target, { max: 10, onnotice: () => {} });
const secretId = randomUUID();
await sql.unsafe(VERSIONS_TABLE(table));
try {
  const rows = Array.from({ length: ROWS }, (_, i) => ({
    secret_id: secretId,
    revision: i + 1,
    status: "enabled",
    data_crc32: 0,
    ...(({ keyId, wrappedKey, ciphertext }) => ({
      key_id: keyId,
      wrapped_key: wrappedKey,
      ciphertext,
    }))(encryptVersion(secretId, i + 1, ECHO_DATA)),
  }));
  await sql`insert into ${sql(table)} ${sql(rows)}`;
  await sql.unsafe(`analyze ${table}`);
  let bytes = 0;
  const access = async () => {
    const revision = 1 + Math.floor(Math.random() * ROWS);
    const [row] = await sql<{ wrapped_key: Buffer; ciphertext: Buffer; data_crc32: string }[]>`
      select key_id, wrapped_key, ciphertext, data_crc32 from ${sql(table)}
      where secret_id = ${secretId} and revision = ${revision} and status = 'enabled'`;
    if (row === undefined) throw new Error("no row");
    bytes = decryptVersion(secretId, revision, row.wrapped_key, row.ciphertext).length;
  };
  await access();
  await runLoop(settings, access, `decrypted ${bytes} bytes`);
} finally {
  await sql.unsafe(`drop table if exists ${table}`);
  await sql.end();
}
