import { existsSync } from "node:fs";
import path from "node:path";
import { sql } from "drizzle-orm";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import {
  addKeyToFile,
  type KeyRing,
  KeyRingError,
  loadKeyFile,
  parseMasterKeys,
} from "../crypto/key-ring.ts";
import { AccessQueues } from "../db/access-queue.ts";
import { type Database, openDatabase } from "../db/client.ts";
import { DataDirLockedError } from "../db/data-dir-lock.ts";
import { rowsOf } from "../db/raw-sql.ts";
import { type DomainDeps, Regions } from "../domain/context.ts";
import { DomainError } from "../domain/errors.ts";
import { type RotationResult, rotateMasterKey } from "../domain/rotate-keys.ts";

export const ROTATE_KEYS_USAGE = `Usage: coffer-server rotate-keys [--rewrap-only | --add-key] [--batch-size N]

Makes a new master key active and rewraps every data key with it, in every
region. Payloads are never decrypted: only their wrapped data keys change.
Reads the same settings as the server (COFFER_DATABASE_URL, COFFER_DATA_DIR,
COFFER_REGIONS, COFFER_MASTER_KEYS, COFFER_MASTER_KEY_FILE, ...).

With a key file (the embedded default $COFFER_DATA_DIR/master-keys.json, or
COFFER_MASTER_KEY_FILE), a fresh key is added to the file and made active,
then data keys are rewrapped. With COFFER_MASTER_KEYS, put the new key first
yourself (the first listed is active, keep the old ones after it); this only
rewraps.

  --rewrap-only   do not add a key: rewrap with the ring's current active key
                  (also finishes an interrupted rotation)
  --add-key       only add a new active key to the key file, rewrap nothing
  --batch-size N  rows per batch (default 500)

Embedded database (no COFFER_DATABASE_URL): stop the server first; the
embedded database cannot be shared with a running server (its folder is
locked, and this command is refused while a server holds it). To rotate
while it serves, use the admin API's key rotation instead.

Postgres: servers keep serving during the rotation, but each of them must
already run with a ring holding the new key as its active key. With a key
file: run --add-key, copy the file to every replica and restart them, then
run --rewrap-only. With COFFER_MASTER_KEYS: prepend the new key on every
replica and restart them, then run rotate-keys.
`;

interface Output {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processOutput: Output = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** A problem for the operator to fix before running again (exit code 2). */
class UsageError extends Error {}

/**
 * `coffer-server rotate-keys`: returns the exit code (0 done, 1 the rotation
 * failed, 2 bad usage, configuration or key ring).
 */
export async function rotateKeysCommand(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  out: Output = processOutput,
): Promise<number> {
  const say = (line: string) => out.stderr(`coffer-server rotate-keys: ${line}\n`);
  let addedKey: string | undefined;
  try {
    const options = parseArgs(args);
    if (options.help) {
      out.stdout(ROTATE_KEYS_USAGE);
      return 0;
    }
    const config = loadConfig(env);
    const source = ringSource(config, options);
    if (source.kind === "file" && options.mode === "add-key") {
      const ring = await addKeyToFile(source.file);
      say(`added master key ${ring.activeId} to ${source.file}; it is now the active key`);
      out.stdout(
        `Active master key: ${ring.activeId}\nNothing was rewrapped. Give every replica this key file and restart them, then run: coffer-server rotate-keys --rewrap-only\n`,
      );
      return 0;
    }
    const databases = await openRegions(config);
    try {
      let ring: KeyRing;
      if (source.kind === "env") {
        ring = parseMasterKeys(source.value);
      } else if (options.mode === "rewrap-only") {
        ring = await loadKeyFile(source.file);
      } else {
        ring = await addKeyToFile(source.file);
        addedKey = ring.activeId;
        say(`added master key ${ring.activeId} to ${source.file}; it is now the active key`);
      }
      const domain: DomainDeps = {
        regions: new Regions(databases),
        // Rewrapping keys changes nothing a watcher sees.
        announce: () => {},
        keyRing: () => ring,
        deletionWindowMs: config.deletionWindowMs,
        watchRetentionMs: config.watchRetentionMs,
        limits: config.limits,
        // Rewrapping reads no payload: no access is ever queued.
        accessQueues: new AccessQueues({ max: 1 }),
      };
      say(`rewrapping data keys with master key ${ring.activeId}`);
      const result = await rotateMasterKey(
        domain,
        { requestId: "rotate-keys-cli" },
        {
          batchSize: options.batchSize,
          onProgress: (p) =>
            say(
              p.done
                ? `region ${p.region}: done, ${p.rewrapped} rows rewrapped`
                : `region ${p.region}: ${p.rewrapped} rows rewrapped so far`,
            ),
        },
      );
      say(`total: ${result.rewrapped} rows rewrapped in ${result.regions.length} region(s)`);
      out.stdout(summary(result));
      return 0;
    } finally {
      await Promise.all([...databases.values()].map((d) => d.close()));
    }
  } catch (err) {
    const resume =
      addedKey === undefined
        ? ""
        : `\nThe new key ${addedKey} is in the key file and active; rows rewrapped so far need it. Fix the cause, then finish with: coffer-server rotate-keys --rewrap-only`;
    if (
      err instanceof UsageError ||
      err instanceof ConfigError ||
      err instanceof KeyRingError ||
      err instanceof DataDirLockedError
    ) {
      say(`${err.message}${resume}`);
      return 2;
    }
    if (err instanceof DomainError) {
      say(`${err.message}${resume}`);
      return 1;
    }
    say(`failed: ${err instanceof Error ? err.message : String(err)}${resume}`);
    return 1;
  }
}

interface Options {
  help: boolean;
  mode: "rotate" | "rewrap-only" | "add-key";
  batchSize: number | undefined;
}

function parseArgs(args: readonly string[]): Options {
  const options: Options = { help: false, mode: "rotate", batchSize: undefined };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      options.help = true;
    } else if (arg === "--rewrap-only" || arg === "--add-key") {
      if (options.mode !== "rotate") {
        throw new UsageError("--rewrap-only and --add-key exclude each other");
      }
      options.mode = arg === "--rewrap-only" ? "rewrap-only" : "add-key";
    } else if (arg === "--batch-size" || arg?.startsWith("--batch-size=")) {
      const value = arg === "--batch-size" ? args[++i] : arg.slice("--batch-size=".length);
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 1 || n > 10_000) {
        throw new UsageError("--batch-size must be an integer from 1 to 10000");
      }
      options.batchSize = n;
    } else {
      throw new UsageError(`unknown argument ${JSON.stringify(arg)}\n${ROTATE_KEYS_USAGE}`);
    }
  }
  return options;
}

type RingSourceSetting = { kind: "env"; value: string } | { kind: "file"; file: string };

/** Where the ring comes from, as the server decides it, and whether this mode fits it. */
function ringSource(config: Config, options: Options): RingSourceSetting {
  const embedded = Object.values(config.databases).every((d) => d.driver === "pglite");
  if (config.masterKeys !== undefined) {
    if (options.mode === "add-key") {
      throw new UsageError(
        "COFFER_MASTER_KEYS is set: there is no key file to add a key to; put the new key first in COFFER_MASTER_KEYS yourself (e.g. new:$(openssl rand -base64 32),<the old entries>)",
      );
    }
    return { kind: "env", value: config.masterKeys };
  }
  if (config.masterKeyFile === undefined) {
    throw new UsageError(
      "no master key: with Postgres, set COFFER_MASTER_KEYS or COFFER_MASTER_KEY_FILE as the servers have them",
    );
  }
  if (!embedded && options.mode === "rotate") {
    // Running servers hold their ring in memory: a key added here now and
    // used at once would leave them unable to read the rows rewrapped with it.
    throw new UsageError(
      "with Postgres, servers keep serving with the ring they started with, so the new key must reach them before any data key is rewrapped with it: run rotate-keys --add-key, give every replica the new key file and restart them, then run rotate-keys --rewrap-only",
    );
  }
  return { kind: "file", file: config.masterKeyFile };
}

/**
 * Opens each region's database without migrating it (the running servers own
 * the schema) and checks that it is a Coffer database.
 */
async function openRegions(config: Config): Promise<Map<string, Database>> {
  const databases = new Map<string, Database>();
  try {
    for (const region of config.regions) {
      const target = config.databases[region];
      if (target === undefined) throw new UsageError(`no database configured for region ${region}`);
      if (target.driver === "pglite" && target.dataDir !== undefined) {
        checkEmbeddedExists(region, target.dataDir);
      }
      const database = await openDatabase(target);
      databases.set(region, database);
      const [row] = rowsOf<{ table: string | null }>(
        await database.db.execute(sql`select to_regclass('secret_versions')::text as table`),
      );
      if (row?.table == null) {
        throw new UsageError(
          `region ${region}: the database has no Coffer schema; start the server on it once first`,
        );
      }
    }
    return databases;
  } catch (err) {
    await Promise.all([...databases.values()].map((d) => d.close()));
    throw err;
  }
}

/**
 * Refuses a folder without a database rather than create one. A server
 * using the folder is refused by the lock openDatabase takes on it.
 */
function checkEmbeddedExists(region: string, dataDir: string): void {
  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    throw new UsageError(
      `region ${region}: no embedded database at ${dataDir}; nothing to rotate (check COFFER_DATA_DIR)`,
    );
  }
}

function summary(result: RotationResult): string {
  const perRegion = result.regions.map((r) => `${r.region}: ${r.rewrapped}`).join(", ");
  const retired =
    result.retiredKeyIds.length === 0
      ? "The ring holds no other key."
      : `No row depends on key(s) ${result.retiredKeyIds.join(", ")} any more; you may remove them from the ring once every replica runs with the new ring.`;
  return `Active master key: ${result.activeKeyId}\nRows rewrapped: ${result.rewrapped} (${perRegion})\n${retired}\n`;
}
