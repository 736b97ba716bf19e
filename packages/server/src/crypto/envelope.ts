import { createCipheriv, createDecipheriv } from "node:crypto";
import { DataKeyCache } from "./data-key-cache.ts";
import type { KeyRing } from "./key-ring.ts";
import { fillRandom } from "./random-pool.ts";

const ALGORITHM = "aes-256-gcm";
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** A wrapped data key is nonce || encrypted 32-byte key || tag. */
const WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES;

const encoder = new TextEncoder();

/**
 * The data keys {@link open} unwrapped, for its next reads of the same
 * versions: up to 4,096 per master key, each for up to 5 minutes
 * (data-key-cache.ts says what finds an entry and what zeroes it).
 */
const dataKeys = new DataKeyCache(4096, 5 * 60_000);

/**
 * Encryption or decryption failed. Messages name what failed (the payload,
 * the wrapped key, a key id) and never contain key material or plaintext.
 */
export class CryptoError extends Error {
  override readonly name = "CryptoError";
}

/**
 * One encrypted secret version as stored: which master key wrapped its data
 * key, the wrapped data key, and the payload.
 */
export type Sealed = {
  /** Id of the master key in the key ring that wrapped `wrappedKey`. */
  keyId: string;
  /** nonce (12) || AES-256-GCM encryption of the 32-byte data key || tag (16). */
  wrappedKey: Uint8Array;
  /** nonce (12) || AES-256-GCM encryption of the payload || tag (16). */
  ciphertext: Uint8Array;
};

/** The part of a {@link Sealed} that a key rotation rewrites. */
export type WrappedKey = Pick<Sealed, "keyId" | "wrappedKey">;

/**
 * Encrypts `plaintext` under a fresh random data key, and wraps that key with
 * the ring's active master key. `aad` must be given again, byte for byte, to
 * {@link open}; use {@link versionAad}.
 *
 * @throws CryptoError when the ring's active key is missing or malformed.
 */
export function seal(plaintext: Uint8Array, aad: Uint8Array, ring: KeyRing): Sealed {
  const masterKey = ringKey(ring, ring.activeId);
  // A fresh data key per version means a random 96-bit nonce is used only
  // once per key, far inside GCM's limits whatever the number of versions.
  const dataKey = fillRandom(Buffer.alloc(KEY_BYTES));
  try {
    return {
      keyId: ring.activeId,
      wrappedKey: encrypt(masterKey, dataKey, wrapAad(ring.activeId)),
      ciphertext: encrypt(dataKey, plaintext, aad),
    };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Decrypts a sealed payload. Fails unless `aad` is the value it was sealed
 * with, so a row copied onto another secret or revision does not decrypt.
 * The data key it unwraps is kept for the next reads (dataKeys), not zeroed
 * here: the cache zeroes it when it drops it.
 *
 * @throws CryptoError when the key id is not in the ring, or the wrapped key
 * or payload were altered, truncated, or bound to other associated data.
 */
export function open(sealed: Sealed, aad: Uint8Array, ring: KeyRing): Uint8Array {
  const masterKey = ringKey(ring, sealed.keyId);
  const dataKey = dataKeys.get(masterKey, sealed.keyId, sealed.wrappedKey, () =>
    unwrapWith(masterKey, sealed),
  );
  return decrypt(dataKey, sealed.ciphertext, aad, "payload");
}

/**
 * Re-wraps a data key with the ring's active master key, for key rotation.
 * The payload is never decrypted or rewritten: store the result in place of
 * the old `keyId` and `wrappedKey`, keeping the ciphertext as it is. Always
 * produces a new wrapping, even when the key is already the active one.
 *
 * @throws CryptoError as {@link open} does for the wrapped key.
 */
export function rewrap(sealed: WrappedKey, ring: KeyRing): WrappedKey {
  const masterKey = ringKey(ring, ring.activeId);
  const dataKey = unwrap(sealed, ring);
  try {
    return {
      keyId: ring.activeId,
      wrappedKey: encrypt(masterKey, dataKey, wrapAad(ring.activeId)),
    };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * The associated data of a secret version, `coffer:v1:<secretId>:<revision>`.
 * The revision is the last field and has no colon, so the encoding is
 * unambiguous even if a secret id contains colons.
 *
 * @throws CryptoError when the secret id is empty or the revision is not a
 * non-negative safe integer.
 */
export function versionAad(secretId: string, revision: number): Uint8Array {
  if (secretId === "") {
    throw new CryptoError("secret id for associated data must not be empty");
  }
  if (!Number.isSafeInteger(revision) || revision < 0) {
    throw new CryptoError("revision for associated data must be a non-negative integer");
  }
  return encoder.encode(`coffer:v1:${secretId}:${revision}`);
}

function unwrap(sealed: WrappedKey, ring: KeyRing): Buffer {
  return unwrapWith(ringKey(ring, sealed.keyId), sealed);
}

function unwrapWith(masterKey: Buffer, sealed: WrappedKey): Buffer {
  if (sealed.wrappedKey.length !== WRAPPED_KEY_BYTES) {
    throw new CryptoError(
      `wrapped key must be ${WRAPPED_KEY_BYTES} bytes (got ${sealed.wrappedKey.length})`,
    );
  }
  return decrypt(masterKey, sealed.wrappedKey, wrapAad(sealed.keyId), "wrapped key");
}

/**
 * Binds a wrapped key to the id of the master key that wrapped it, so
 * relabelling a row with another id fails even if two ids share key bytes.
 */
function wrapAad(keyId: string): Uint8Array {
  return encoder.encode(keyId);
}

function ringKey(ring: KeyRing, id: string): Buffer {
  const key = ring.keys.get(id);
  if (key === undefined) {
    // JSON quoting keeps a corrupted id from a row from forging log lines.
    throw new CryptoError(`unknown master key id ${JSON.stringify(id)}`);
  }
  if (key.length !== KEY_BYTES) {
    throw new CryptoError(`master key ${JSON.stringify(id)} must be ${KEY_BYTES} bytes`);
  }
  return key;
}

/** Returns nonce || ciphertext || tag. */
function encrypt(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = fillRandom(Buffer.allocUnsafe(NONCE_BYTES));
  const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([nonce, body, tail, cipher.getAuthTag()]);
}

/** Opens nonce || ciphertext || tag; `what` names the input in errors. */
function decrypt(key: Uint8Array, box: Uint8Array, aad: Uint8Array, what: string): Buffer {
  if (box.length < NONCE_BYTES + TAG_BYTES) {
    throw new CryptoError(`${what} is truncated`);
  }
  const nonce = box.subarray(0, NONCE_BYTES);
  const body = box.subarray(NONCE_BYTES, box.length - TAG_BYTES);
  const tag = box.subarray(box.length - TAG_BYTES);
  const decipher = createDecipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tag);
  decipher.setAAD(aad);
  // GCM releases plaintext before the tag is checked; it must not outlive a
  // failed check.
  const head = decipher.update(body);
  let tail: Buffer;
  try {
    tail = decipher.final();
  } catch {
    head.fill(0);
    throw new CryptoError(`${what} failed authentication`);
  }
  if (tail.length === 0) {
    return head;
  }
  const plaintext = Buffer.concat([head, tail]);
  head.fill(0);
  return plaintext;
}
