import { hash } from "node:crypto";
import type { KeyRing } from "./key-ring.ts";

/** How many unwrapped data keys a key ring keeps: 32 bytes each, ~150 bytes with their entry. */
export const DATA_KEY_CACHE_SIZE = 1024;

/**
 * The data keys that envelope.ts's open() unwrapped lately, so that a
 * version read again and again (a service reading its database password at
 * every start or request: the usual load) pays one AES-GCM, its payload's,
 * not two. In the profile of 2026-12-05 the unwrap was 3.6 % of a gRPC
 * access's CPU, the payload's decrypt 1.3 %.
 *
 * What is kept, and why that is acceptable:
 * - Only keys whose unwrap passed GCM's check under this ring, and whose
 *   payload then passed its own: a hit stands for a check that would pass
 *   again, since a ring's key bytes never change for an id (KeyRingHolder
 *   refuses a ring that changes them). Every payload is still decrypted and
 *   verified on every read.
 * - Entries are found by the SHA-256 of the key id and the wrapped bytes, so
 *   a row relabelled with another key id misses and is unwrapped (and
 *   refused) as before; the map holds no wrapped key, only its hash.
 * - The keys held are no exposure the process does not already have: the
 *   master keys sit in the same memory for the whole run and unwrap every
 *   data key in the database, and each read puts the payload itself there.
 *   What this adds is at most DATA_KEY_CACHE_SIZE keys of recently read
 *   versions, in buffers of their own (not node's shared pool), zeroed when
 *   evicted and when wiped: on a new ring (KeyRingHolder.set) and at the end
 *   of an online rotation, after which no row is wrapped as they were.
 * - Never logged, never in an error: nothing here formats a key or an id.
 */
export class DataKeyCache {
  readonly #keys = new Map<string, Buffer>();

  constructor(private readonly max: number = DATA_KEY_CACHE_SIZE) {}

  /** The unwrapped key for `id`, now the most recently used; undefined when not held. */
  get(id: string): Buffer | undefined {
    const key = this.#keys.get(id);
    if (key !== undefined) {
      // A Map iterates in insertion order: re-inserting makes it the newest.
      this.#keys.delete(id);
      this.#keys.set(id, key);
    }
    return key;
  }

  /** Keeps a copy of `key` (the caller may zero its own), evicting and zeroing the oldest past the bound. */
  set(id: string, key: Uint8Array): void {
    if (this.#keys.has(id) || this.max <= 0) return;
    const copy = Buffer.alloc(key.length);
    copy.set(key);
    this.#keys.set(id, copy);
    if (this.#keys.size > this.max) {
      const [oldest, value] = this.#keys.entries().next().value as [string, Buffer];
      value.fill(0);
      this.#keys.delete(oldest);
    }
  }

  /** Zeroes and forgets every key. */
  wipe(): void {
    for (const key of this.#keys.values()) key.fill(0);
    this.#keys.clear();
  }

  get size(): number {
    return this.#keys.size;
  }
}

/** Each ring's cache: a new ring starts empty. */
const caches = new WeakMap<KeyRing, DataKeyCache>();

/** The data key cache of `ring`, made at first use. */
export function dataKeysOf(ring: KeyRing): DataKeyCache {
  let cache = caches.get(ring);
  if (cache === undefined) {
    cache = new DataKeyCache();
    caches.set(ring, cache);
  }
  return cache;
}

/** Zeroes and forgets the data keys unwrapped with `ring` (a rotation, a new ring). */
export function wipeDataKeys(ring: KeyRing): void {
  caches.get(ring)?.wipe();
}

/**
 * Where a wrapped key's unwrapped key is kept: SHA-256 over the key id, a
 * NUL (no key id holds one, and the wrapped key has a fixed length, so the
 * encoding is unambiguous), and the wrapped bytes.
 */
export function dataKeyId(keyId: string, wrappedKey: Uint8Array): string {
  const id = Buffer.from(keyId, "utf8");
  const input = Buffer.allocUnsafe(id.length + 1 + wrappedKey.length);
  id.copy(input);
  input[id.length] = 0;
  input.set(wrappedKey, id.length + 1);
  return hash("sha256", input, "base64");
}
