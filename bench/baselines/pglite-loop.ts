/**
 * Baseline of the access benchmark on the embedded database: PGlite in this
 * process, with a data folder (as Coffer's default), a primary-key select
 * of one version row (1 KiB ciphertext) and its AES-256-GCM unwrap +
 * decrypt, from `concurrency` workers (PGlite runs one query at a time).
 * Started by bench/run.ts (settings in BENCH_LOOP; target is the data
 * folder); prints the bench/support/loop.ts protocol.
 */
import { randomUUID } from "node:crypto";
import { PGlite } from "@electric-sql/pglite";
import { loopSettings, runLoop } from "../support/loop.ts";
import { ECHO_DATA } from "./echo-payload.ts";
import { decryptVersion, encryptVersion, VERSIONS_TABLE } from "./envelope.ts";

const settings = loopSettings();
const ROWS = 1000;
const db = new PGlite(settings.target);
const secretId = randomUUID();
await db.exec(`drop table if exists bench_versions; ${VERSIONS_TABLE("bench_versions")}`);
try {
  await db.transaction(async (tx) => {
    for (let r = 1; r <= ROWS; r++) {
      const { keyId, wrappedKey, ciphertext } = encryptVersion(secretId, r, ECHO_DATA);
      await tx.query(
        `insert into bench_versions (secret_id, revision, status, data_crc32, key_id, wrapped_key, ciphertext)
         values ($1, $2, 'enabled', 0, $3, $4, $5)`,
        [secretId, r, keyId, wrappedKey, ciphertext],
      );
    }
  });
  await db.exec("analyze bench_versions");
  let bytes = 0;
  const access = async () => {
    const revision = 1 + Math.floor(Math.random() * ROWS);
    const { rows } = await db.query<{ wrapped_key: Uint8Array; ciphertext: Uint8Array }>(
      `select key_id, wrapped_key, ciphertext, data_crc32 from bench_versions
       where secret_id = $1 and revision = $2 and status = 'enabled'`,
      [secretId, revision],
    );
    const row = rows[0];
    if (row === undefined) throw new Error("no row");
    bytes = decryptVersion(secretId, revision, row.wrapped_key, row.ciphertext).length;
  };
  await access();
  await runLoop(settings, access, `decrypted ${bytes} bytes`);
} finally {
  await db.close();
}
