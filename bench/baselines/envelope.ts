import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * Envelope encryption of the same shape as Coffer's: a fresh AES-256-GCM
 * data key per version, wrapped (AES-256-GCM) by a master key; the payload's
 * associated data binds it to its secret and revision. For the bare loops.
 */
export const MASTER_KEY = randomBytes(32);

function seal(key: Uint8Array, plain: Uint8Array, aad?: Uint8Array): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  if (aad !== undefined) cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function open(key: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const decipher = createDecipheriv("aes-256-gcm", key, buf.subarray(0, 12));
  decipher.setAuthTag(buf.subarray(12, 28));
  if (aad !== undefined) decipher.setAAD(aad);
  return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]);
}

const aadOf = (secretId: string, revision: number) => Buffer.from(`${secretId}:${revision}`);

export function encryptVersion(secretId: string, revision: number, payload: Uint8Array) {
  const dataKey = randomBytes(32);
  const wrappedKey = seal(MASTER_KEY, dataKey);
  const ciphertext = seal(dataKey, payload, aadOf(secretId, revision));
  dataKey.fill(0);
  return { keyId: "bench", wrappedKey, ciphertext };
}

export function decryptVersion(
  secretId: string,
  revision: number,
  wrappedKey: Uint8Array,
  ciphertext: Uint8Array,
): Buffer {
  const dataKey = open(MASTER_KEY, wrappedKey);
  const plain = open(dataKey, ciphertext, aadOf(secretId, revision));
  dataKey.fill(0);
  return plain;
}

/** A table of the shape of Coffer's secret_versions (the columns an access reads and a create writes). */
export const VERSIONS_TABLE = (name: string) => `
  create table ${name} (
    secret_id uuid not null,
    revision integer not null,
    status text not null,
    description text not null default '',
    data_crc32 bigint not null,
    key_id text,
    wrapped_key bytea,
    ciphertext bytea,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (secret_id, revision)
  )`;
