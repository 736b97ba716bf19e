import { performance } from "node:perf_hooks";

/**
 * Data keys already unwrapped, so that reading a version again costs one
 * AES-GCM decryption (its payload) instead of two (its wrapped key, then its
 * payload): the per-call cost issue 16 names "the second AES-GCM". The same
 * trade as the AWS Encryption SDK's caching materials manager, bounded the
 * same ways:
 *
 * - an entry is found only under the exact master key object that unwrapped
 *   it, its key id and its wrapped key's bytes: a ring reloaded or a key
 *   removed (new or no key object) misses, as does a wrapped key altered or
 *   relabelled with another id, which then fails to unwrap as before;
 * - at most `maxEntries` (at least 1) keys per master key, each for at most
 *   `maxAgeMs`;
 *   the oldest goes first, and every key that leaves is zeroed.
 *
 * What it holds is no more than the process already holds: the master keys
 * that unwrap every data key.
 */
export class DataKeyCache {
  readonly #byMasterKey = new WeakMap<Buffer, Map<string, Entry>>();

  constructor(
    readonly maxEntries: number,
    readonly maxAgeMs: number,
    /** A monotonic clock, in ms. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * The data key `masterKey` unwrapped from `wrappedKey` under `keyId`, from
   * the cache or from `unwrap` (whose result the cache then owns: callers
   * must not zero it).
   */
  get(masterKey: Buffer, keyId: string, wrappedKey: Uint8Array, unwrap: () => Buffer): Buffer {
    let entries = this.#byMasterKey.get(masterKey);
    if (entries === undefined) {
      entries = new Map();
      this.#byMasterKey.set(masterKey, entries);
    }
    const name = `${keyId}:${latin1(wrappedKey)}`;
    const now = this.now();
    const hit = entries.get(name);
    if (hit !== undefined) {
      if (now - hit.at < this.maxAgeMs) return hit.key;
      drop(entries, name, hit);
    }
    const key = unwrap();
    // The oldest first: a Map iterates in insertion order.
    for (const [oldest, entry] of entries) {
      if (entries.size < this.maxEntries && now - entry.at < this.maxAgeMs) break;
      drop(entries, oldest, entry);
    }
    entries.set(name, { key, at: now });
    return key;
  }
}

interface Entry {
  key: Buffer;
  /** When it was unwrapped (the cache's clock, ms). */
  at: number;
}

function drop(entries: Map<string, Entry>, name: string, entry: Entry): void {
  entries.delete(name);
  entry.key.fill(0);
}

/** The bytes as a string of as many characters: a map key, not text. */
function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}
