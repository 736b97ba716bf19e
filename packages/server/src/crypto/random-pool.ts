import { randomFillSync } from "node:crypto";

/** Bytes drawn from the system's generator at a time. */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/**
 * Fills `target` with cryptographically secure random bytes, and returns it.
 * Every call to node's `randomBytes` or `randomFillSync` is a native call
 * into OpenSSL that costs about 2 µs whatever its size (4 KiB costs 3.4), and
 * sealing a version needs three draws (its data key and two nonces): with
 * the ids, they were 5 % of a create's server CPU (bench/RESULTS.md, writes
 * reading of 2026-12-07, twelfth session). This draws 4 KiB at a time, as
 * node's own `randomUUID` batches its entropy, and hands each byte out once:
 * the bytes copied out are zeroed in the pool, so a data key drawn here
 * lives only in its caller's buffer, which the caller zeroes.
 */
export function fillRandom<T extends Uint8Array>(target: T): T {
  const n = target.length;
  if (n > POOL_BYTES) return randomFillSync(target);
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const drawn = pool.subarray(offset, offset + n);
  target.set(drawn);
  drawn.fill(0);
  offset += n;
  return target;
}
