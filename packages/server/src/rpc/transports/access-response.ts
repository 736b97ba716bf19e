import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { AccessSecretVersionResponseSchema } from "@coffer/api";

type Init = MessageInitShape<typeof AccessSecretVersionResponseSchema>;

/**
 * AccessSecretVersionResponse in protobuf's binary encoding, written by hand
 * for the gRPC port: the one response every access sends, and the only one
 * with a payload in it. protobuf-es's `toBinary` grows its writer from a
 * small buffer to the payload's size and then copies it out (5.5 µs for a
 * 1 KiB payload; this takes 1.4, and one allocation): 3.6 % of the server's
 * CPU per gRPC access (bench/RESULTS.md, access reading of 2026-12-07,
 * twelfth session). Fields in number order, proto3 defaults left out, as
 * `toBinary` writes them: the tests compare the two byte for byte.
 *
 * Returns undefined for anything `toBinary` should judge: a value out of its
 * field's range, or unknown fields carried by a message.
 */
export function encodeAccessResponse(init: Init): Buffer | undefined {
  if ("$unknown" in init && init.$unknown !== undefined && init.$unknown.length > 0) {
    return undefined;
  }
  const secretId = init.secretId ?? "";
  const revision = init.revision ?? 0;
  const data = init.data ?? EMPTY;
  const crc = init.dataCrc32 ?? 0;
  const type: number = init.type ?? 0;
  const singleAccess = init.singleAccess ?? false;
  if (!isUint32(revision) || !isUint32(crc) || !isUint32(type) || type > 0x7fffffff) {
    return undefined;
  }
  const idBytes = Buffer.byteLength(secretId, "utf8");
  let size = 0;
  if (idBytes > 0) size += 1 + varintSize(idBytes) + idBytes;
  if (revision !== 0) size += 1 + varintSize(revision);
  if (data.length > 0) size += 1 + varintSize(data.length) + data.length;
  if (crc !== 0) size += 1 + varintSize(crc);
  if (type !== 0) size += 1 + varintSize(type);
  if (singleAccess) size += 2;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  // Each tag is (field number << 3) | wire type: 2 for length-delimited, 0 for varint.
  if (idBytes > 0) {
    out[at++] = (1 << 3) | 2;
    at = writeVarint(out, at, idBytes);
    at += out.write(secretId, at, "utf8");
  }
  if (revision !== 0) {
    out[at++] = 2 << 3;
    at = writeVarint(out, at, revision);
  }
  if (data.length > 0) {
    out[at++] = (3 << 3) | 2;
    at = writeVarint(out, at, data.length);
    out.set(data, at);
    at += data.length;
  }
  if (crc !== 0) {
    out[at++] = 4 << 3;
    at = writeVarint(out, at, crc);
  }
  if (type !== 0) {
    out[at++] = 5 << 3;
    at = writeVarint(out, at, type);
  }
  if (singleAccess) {
    out[at++] = 6 << 3;
    out[at++] = 1;
  }
  return out;
}

const EMPTY = new Uint8Array(0);

function isUint32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** Writes `value` (a uint32) as a varint at `at`; returns the position after it. */
function writeVarint(out: Buffer, at: number, value: number): number {
  let v = value;
  let i = at;
  while (v > 0x7f) {
    out[i++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[i++] = v;
  return i;
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/**
 * `init` encoded by hand when `schema` is one written here (the access
 * response alone); undefined for `toBinary` to encode.
 */
export function encodeByHand(schema: DescMessage, init: unknown): Buffer | undefined {
  return schema === AccessSecretVersionResponseSchema
    ? encodeAccessResponse(init as Init)
    : undefined;
}
