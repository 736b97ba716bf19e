/**
 * gRPC's length-prefixed framing (one flag byte, a 4-byte big-endian length,
 * the message), to pre-encode request bodies for h2load and to answer from a
 * bare node:http2 handler.
 */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** The messages of a buffer of whole, uncompressed gRPC frames. */
export function grpcMessages(body: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  while (at + 5 <= view.length) {
    if (view[at] !== 0) throw new Error("compressed gRPC frame");
    const length = view.readUInt32BE(at + 1);
    if (at + 5 + length > view.length) throw new Error("truncated gRPC frame");
    out.push(view.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  if (at !== view.length) throw new Error("truncated gRPC frame header");
  return out;
}
