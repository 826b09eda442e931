/**
 * Per-block checksums of stored chunks. One CRC32 (shared/crc32.ts)
 * per 4 KiB block, kept in a table of little-endian u32 words at the start
 * of the chunk's file (file-store.ts).
 *
 * A stored word of 0 means "never written": the block must then read as all
 * zeros (the holes of a sparse file read 0, both in the table and in the
 * data, so a chunk needs no initialisation). A block is good when its
 * CRC equals the stored word, or the word is 0 and the block is all zeros.
 */
import { crc32 } from '../../shared/crc32.js';
import { checksumBlockBytes } from '../limits.js';

export const BLOCK_BYTES = checksumBlockBytes;
export const ZERO_BLOCK_CRC = crc32(Buffer.alloc(BLOCK_BYTES));

export function blockCrc(block: Buffer): number {
  return crc32(block);
}

export function blockGood(stored: number, actual: number): boolean {
  return stored === actual || (stored === 0 && actual === ZERO_BLOCK_CRC);
}

/** First and last block index touched by [offset, offset + length). */
export function blockSpan(offset: number, length: number): { first: number; last: number } {
  return { first: Math.floor(offset / BLOCK_BYTES), last: Math.floor((offset + length - 1) / BLOCK_BYTES) };
}
