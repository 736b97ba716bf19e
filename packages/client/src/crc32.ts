/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib and gzip), in plain TypeScript
 * so that browsers, which have no zlib, check payloads the same way.
 */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * The CRC-32 (IEEE) of `data`, as the API's `data_crc32` fields hold it (an
 * unsigned 32-bit number). The CRC-32 of no bytes is 0.
 */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}
