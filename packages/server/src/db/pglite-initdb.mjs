// Creates an embedded database (PGlite runs initdb) in the folder named by
// the first argument, then exits. Run as a child process by client.ts so
// that initdb's memory is returned to the system when it is done; plain
// JavaScript so that it needs no TypeScript loader.
import { PGlite } from "@electric-sql/pglite";

const folder = process.argv[2];
if (folder === undefined) {
  process.stderr.write("usage: pglite-initdb.mjs <folder>\n");
  process.exit(2);
}
const db = await PGlite.create(folder);
// A clean close: the new database is checkpointed and complete on disk.
await db.close();
