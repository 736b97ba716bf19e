/**
 * HTTP/2 written by hand, for tests that need what node's client will not
 * send: a stream reset without its end, headers cut off, a body stalled
 * between frames.
 */

/** One HTTP/2 frame (RFC 9113, section 4.1) on stream `streamId`. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** Header fields as HPACK literals without indexing (RFC 7541, section 6.2.2), names and values as plain text. */
export function hpackLiterals(fields: [string, string][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    out.push(0x00, ...hpackInt(name.length, 7), ...Buffer.from(name, "latin1"));
    out.push(...hpackInt(value.length, 7), ...Buffer.from(value, "latin1"));
  }
  return Buffer.from(out);
}

/** An HPACK integer with an `n`-bit prefix (RFC 7541, section 5.1), prefix bits zero. */
function hpackInt(value: number, n: number): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [value];
  const out = [max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) + 128);
  out.push(value);
  return out;
}
