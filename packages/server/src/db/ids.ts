import { fillRandom } from "../crypto/random-pool.ts";

/**
 * Row ids that sort by creation time (UUID version 7, RFC 9562 section 5.7:
 * 48 bits of Unix milliseconds, then 74 random bits), for the tables every
 * call appends to (audit_events). A random id (version 4) puts each insert
 * into a random leaf of the primary key's index: once the index outgrows
 * the pages written since the last checkpoint, nearly every insert dirties a
 * page of its own, and its first change after a checkpoint writes the whole
 * page to the WAL. Ids in time order append to the index's right edge, so
 * consecutive inserts share its last pages. The time an id shows is the
 * event's own, which the row holds anyway.
 */
export function timeOrderedUuid(now: number = Date.now()): string {
  const r = fillRandom(scratch);
  const ms = now.toString(16).padStart(12, "0");
  // The version (7) over the first byte's high bits, RFC 9562's variant (0b10) over the third's.
  const version = ((r[0] as number) & 0x0f) | 0x70;
  const variant = ((r[2] as number) & 0x3f) | 0x80;
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-${HEX[version]}${HEX[r[1] as number]}-${HEX[variant]}${HEX[r[3] as number]}-${hex(r, 4, 10)}`;
}

/** Random bytes one id takes (74 bits used). */
const RANDOM_BYTES = 10;
/** Each id's random bytes, read before the next id is made. */
const scratch = Buffer.alloc(RANDOM_BYTES);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const hex = (bytes: Uint8Array, from: number, to: number) => {
  let out = "";
  for (let i = from; i < to; i++) out += HEX[bytes[i] as number];
  return out;
};
