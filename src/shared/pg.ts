/**
 * Chunk -> placement group hashing, shared by SDC, SDS and MDM.
 *
 * This function is part of the on-disk and wire contract: every component
 * must map a chunk to the same PG, and changing it would move every chunk of
 * every volume. It is MurmurHash3 (x86, 32-bit) over the little-endian words
 * (volumeTreeId, chunkIndex low 32 bits, chunkIndex high bits) with seed 0,
 * written with Math.imul so that a call allocates nothing (it runs per IO).
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const TWO_POW_32 = 0x1_0000_0000;

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finalize(h: number, lengthBytes: number): number {
  h ^= lengthBytes;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 of two 32-bit words: a stable, well-spread unsigned 32-bit value. */
export function hash32x2(a: number, b: number): number {
  return finalize(mixBlock(mixBlock(0, a | 0), b | 0), 8);
}

/**
 * The PG (0..pgCount-1) that chunk `chunkIndex` of volume tree
 * `volumeTreeId` lives in. chunkIndex may be any safe integer >= 0.
 */
export function pgOfChunk(volumeTreeId: number, chunkIndex: number, pgCount: number): number {
  const lo = chunkIndex % TWO_POW_32;
  const hi = (chunkIndex - lo) / TWO_POW_32;
  let h = mixBlock(0, volumeTreeId | 0);
  h = mixBlock(h, lo | 0);
  h = mixBlock(h, hi | 0);
  return finalize(h, 12) % pgCount;
}
