/**
 * The data path's CRC32 (IEEE 802.3, the polynomial of zlib and of every
 * chunk checksum file written so far) from @node-rs/crc32's SIMD code, which
 * computes the same values as node's zlib.crc32 about twice as fast on the
 * 4 KiB blocks the store checks (docs/benchmarks.md, "CRC32"). CRC32C would
 * change the on-disk and on-wire format and measured slower here.
 *
 * Also: the CRCs
 * of the 4 KiB blocks of a buffer, and the CRC of the whole buffer folded
 * from them (zlib's crc32_combine for a fixed block length), so a 4 KiB
 * aligned payload is checksummed in ONE pass that serves both the frame
 * check and the per-block checksums the chunk store keeps.
 *
 * crc(A || B) = shift(crc(A)) ^ crc(B), where shift is a linear map over
 * GF(2) that depends only on len(B); shift(v) = crc32(zeros(len B), v) ^
 * crc32(zeros(len B), 0). It is tabulated per byte of v (4 x 256 words).
 */
import { crc32 as simdCrc32 } from '@node-rs/crc32';

export const CRC_BLOCK_BYTES = 4096;

/** CRC32 of data, continuing from value (0 for a fresh CRC): zlib.crc32's contract. */
export function crc32(data: Buffer, value = 0): number {
  return simdCrc32(data, value);
}

function shiftTables(len: number): Uint32Array[] {
  const zeros = Buffer.alloc(len);
  const base = crc32(zeros, 0);
  const basis = new Uint32Array(32);
  for (let k = 0; k < 32; k++) basis[k] = (crc32(zeros, (1 << k) >>> 0) ^ base) >>> 0;
  const tables = [0, 1, 2, 3].map((byte) => {
    const t = new Uint32Array(256);
    for (let v = 0; v < 256; v++) {
      let acc = 0;
      for (let bit = 0; bit < 8; bit++) if (v & (1 << bit)) acc ^= basis[byte * 8 + bit]!;
      t[v] = acc >>> 0;
    }
    return t;
  });
  return tables;
}

const [T0, T1, T2, T3] = shiftTables(CRC_BLOCK_BYTES) as [Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/** CRC of A || B from crc(A) and crc(B), len(B) = CRC_BLOCK_BYTES. */
export function combineBlock(crcA: number, crcB: number): number {
  return (T0[crcA & 0xff]! ^ T1[(crcA >>> 8) & 0xff]! ^ T2[(crcA >>> 16) & 0xff]! ^ T3[crcA >>> 24]! ^ crcB) >>> 0;
}

/**
 * Fills out[i] with the CRC32 of block i of data (data.length a multiple of
 * CRC_BLOCK_BYTES) and returns the CRC32 of all of data.
 */
export function blockCrcs(data: Buffer, out: Uint32Array): number {
  const n = data.length / CRC_BLOCK_BYTES;
  let whole = 0;
  for (let i = 0; i < n; i++) {
    const c = crc32(data.subarray(i * CRC_BLOCK_BYTES, (i + 1) * CRC_BLOCK_BYTES));
    out[i] = c;
    whole = i === 0 ? c : combineBlock(whole, c);
  }
  return whole;
}

/** True when [offset, offset+length) is made of whole 4 KiB blocks. */
export function blockAligned(offset: number, length: number): boolean {
  return length > 0 && offset % CRC_BLOCK_BYTES === 0 && length % CRC_BLOCK_BYTES === 0;
}
