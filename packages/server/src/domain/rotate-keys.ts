import { CryptoError, rewrap } from "../crypto/envelope.ts";
import { addKeyToFile, type KeyRing, KeyRingError } from "../crypto/key-ring.ts";
import type { KeyRingHolder } from "../crypto/key-ring-holder.ts";
import type { Db } from "../db/client.ts";
import {
  countWrappedOutside,
  nextWrappedOutside,
  replaceWrappedKeys,
  type VersionCursor,
  type WrappedKeyChange,
  type WrappedKeyRow,
} from "../db/wrapped-keys.ts";
import type { Caller } from "./caller.ts";
import type { DomainDeps } from "./context.ts";
import { failedPrecondition } from "./errors.ts";

/** Rows read, rewrapped and written back per statement. */
const DEFAULT_BATCH_SIZE = 500;

/**
 * Full scans of a region before giving up. A second scan finds only rows
 * sealed during the first one with an older active key, which means some
 * server still runs with an older ring; more scans would not catch up with it.
 */
const MAX_PASSES = 5;

/** Reported after each batch that changed rows, and once when a region is done. */
export interface RotationProgress {
  region: string;
  /** Rows rewrapped so far in this region. */
  rewrapped: number;
  done: boolean;
}

export interface RotationOptions {
  /** Rows per batch (default 500). */
  batchSize?: number;
  onProgress?: (progress: RotationProgress) => void;
}

export interface RotationResult {
  /** The master key every data key is now wrapped with. */
  activeKeyId: string;
  /** Rows rewrapped, all regions together. */
  rewrapped: number;
  regions: { region: string; rewrapped: number }[];
  /**
   * The ring's other keys: when the rotation finished, no row depended on
   * them any more. They may leave the ring once every replica runs with the
   * new active key (a replica on an older ring would still wrap with them).
   */
  retiredKeyIds: string[];
}

/**
 * Rewraps every data key that is not wrapped with the ring's active master
 * key, in every region, in batches. Payload ciphertexts are never read or
 * written: each data key is unwrapped and wrapped again in memory, and
 * written back only if its row still holds the wrapped key that was read
 * (see replaceWrappedKeys), so a version destroyed or consumed meanwhile is
 * never brought back. Reads keep working throughout because the ring holds
 * both the old and the new key.
 *
 * With several replicas, every replica must already run with a ring holding
 * the new key (active) before this runs: a replica without it cannot read
 * the rows rewrapped here, and one with an older active key keeps sealing
 * new versions with it. Roll the ring out first, then rotate.
 *
 * Safe to run again after a failure (it continues where it stopped), and
 * safe to run concurrently with itself for the same active key. The caller's
 * authorization (global admin) is checked by the admin layer.
 *
 * @throws DomainError failed_precondition when rows are wrapped with a key
 * the ring lacks, a wrapped key fails authentication, or rows under older keys
 * keep appearing (some server seals with an older active key).
 */
export async function rotateMasterKey(
  domain: DomainDeps,
  _caller: Caller,
  options: RotationOptions = {},
): Promise<RotationResult> {
  // One ring for the whole run: rows are rewrapped to one active key even if
  // the running ring is replaced meanwhile.
  const ring = domain.keyRing();
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be a positive integer (got ${batchSize})`);
  }
  const regions: RotationResult["regions"] = [];
  for (const { name, database } of domain.regions.all()) {
    const rewrapped = await rotateRegion(database.db, name, ring, batchSize, options.onProgress);
    regions.push({ region: name, rewrapped });
  }
  return {
    activeKeyId: ring.activeId,
    rewrapped: regions.reduce((sum, r) => sum + r.rewrapped, 0),
    regions,
    retiredKeyIds: [...ring.keys.keys()].filter((id) => id !== ring.activeId),
  };
}

/** Where the running key ring comes from, for {@link rotateMasterKeyOnline}. */
export interface RingSource {
  /** The running ring; the domain's `keyRing` must be `holder.get`. */
  holder: KeyRingHolder;
  /**
   * The key file that this process alone serves from (the embedded
   * database's): an online rotation adds its new key there. Undefined when
   * the ring comes from COFFER_MASTER_KEYS, or when replicas share a Postgres
   * database: a key added on one replica's disk would be missing from the
   * others, so there the operator rolls the new ring out first.
   */
  keyFile?: string;
}

const rotating = new WeakSet<KeyRingHolder>();

/**
 * Rotation while serving, for the admin RPC. With a key file, first adds a
 * fresh key to it, makes that key active in the running ring (new versions
 * are sealed with it from the next call on), then rewraps every data key.
 * Without one, only rewraps, to the active key of the ring the server
 * started with.
 *
 * @throws DomainError failed_precondition when a rotation is already running
 * on this server, the key file cannot be changed, or as {@link rotateMasterKey}.
 */
export async function rotateMasterKeyOnline(
  domain: DomainDeps,
  caller: Caller,
  source: RingSource,
  options: RotationOptions = {},
): Promise<RotationResult & { addedKeyId?: string }> {
  if (domain.keyRing() !== source.holder.get()) {
    throw new Error("the domain does not read its key ring from this holder");
  }
  if (rotating.has(source.holder)) {
    throw failedPrecondition("a master key rotation is already running on this server");
  }
  rotating.add(source.holder);
  try {
    let addedKeyId: string | undefined;
    if (source.keyFile !== undefined) {
      let ring: KeyRing;
      try {
        ring = await addKeyToFile(source.keyFile);
      } catch (err) {
        if (err instanceof KeyRingError) {
          throw failedPrecondition(`cannot add a master key: ${err.message}`);
        }
        throw err;
      }
      source.holder.set(ring);
      addedKeyId = ring.activeId;
    }
    const result = await rotateMasterKey(domain, caller, options);
    return addedKeyId === undefined ? result : { ...result, addedKeyId };
  } finally {
    rotating.delete(source.holder);
  }
}

async function rotateRegion(
  db: Db,
  region: string,
  ring: KeyRing,
  batchSize: number,
  onProgress: RotationOptions["onProgress"],
): Promise<number> {
  // Checked up front so that a missing key is named before anything changes;
  // rewrapRow still guards rows sealed with an unknown key meanwhile.
  const unknown = (await countWrappedOutside(db, ring.activeId)).filter(
    (k) => !ring.keys.has(k.keyId),
  );
  if (unknown.length > 0) {
    const list = unknown.map((k) => `${JSON.stringify(k.keyId)} (${k.rows} rows)`).join(", ");
    throw failedPrecondition(
      `region ${region}: data keys are wrapped with master key(s) the ring lacks: ${list}; add them to the ring and rotate again`,
    );
  }
  let rewrapped = 0;
  for (let pass = 1; ; pass++) {
    let after: VersionCursor | undefined;
    let seen = 0;
    for (;;) {
      const rows = await nextWrappedOutside(db, ring.activeId, after, batchSize);
      const last = rows.at(-1);
      if (last === undefined) break;
      seen += rows.length;
      after = last;
      const changes = rows.map((row) => rewrapRow(region, row, ring));
      const changed = await replaceWrappedKeys(db, changes);
      // Rows not changed were destroyed or rewrapped by someone else meanwhile.
      rewrapped += changed;
      if (changed > 0) onProgress?.({ region, rewrapped, done: false });
      if (rows.length < batchSize) break;
      // On the embedded database queries answer through microtasks only: a
      // rotation that never yields holds the event loop, and with it the
      // accesses queued for their next batch (flushed from setImmediate,
      // db/access-queue.ts), until it ends.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    // A pass that saw nothing was a single statement finding no row: at that
    // moment, no row in the region depended on another key.
    if (seen === 0) break;
    if (pass === MAX_PASSES) {
      const left = await countWrappedOutside(db, ring.activeId);
      const list = left.map((k) => `${JSON.stringify(k.keyId)} (${k.rows} rows)`).join(", ");
      throw failedPrecondition(
        `region ${region}: rows wrapped with older master keys keep appearing (${list || "none left now"}): some server still seals new versions with an older active key; give every replica the ring whose active key is ${JSON.stringify(ring.activeId)}, then rotate again`,
      );
    }
  }
  onProgress?.({ region, rewrapped, done: true });
  return rewrapped;
}

function rewrapRow(region: string, row: WrappedKeyRow, ring: KeyRing): WrappedKeyChange {
  try {
    return { before: row, ...rewrap(row, ring) };
  } catch (err) {
    if (err instanceof CryptoError) {
      throw failedPrecondition(
        `region ${region}: cannot rewrap the data key of secret ${row.secretId} revision ${row.revision}: ${err.message}; rows rewrapped so far stay readable, rotate again once this is fixed`,
      );
    }
    throw err;
  }
}
