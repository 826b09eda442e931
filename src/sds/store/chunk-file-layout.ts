/**
 * Where a chunk's bytes and its block checksums live in its one file
 * (file-store.ts):
 *
 *   [0, CHUNK_TABLE_BYTES)     u32 LE CRC32 per 4 KiB block, at 4 * blockIndex
 *   [CHUNK_TABLE_BYTES, ...)   the chunk's bytes; the file ends at its last written byte
 *
 * The table is sized for the largest chunk the protocol allows and comes
 * first, so the chunk's size follows from the file's size and needs no
 * header; unwritten words and data are holes (reading as 0). Keeping each
 * table block next to its data instead (4 KiB of words before each 4 MiB)
 * was measured and saved no disk write (docs/benchmarks.md "One file per
 * chunk"), so the simpler layout stays.
 */
import { assert } from '../../shared/errors.js';
import { chunkBytesMax } from '../../dataplane/limits.js';
import { BLOCK_BYTES } from './block-crc.js';

/** The suffix of a chunk file; a new layout takes a new suffix. */
export const CHUNK_FILE_SUFFIX = '.chk';
/** Bytes before a chunk's data: the checksum table of the largest chunk. */
export const CHUNK_TABLE_BYTES = 256 * 1024;
assert((chunkBytesMax / BLOCK_BYTES) * 4 <= CHUNK_TABLE_BYTES, 'the checksum table of the largest chunk must fit before its data');

/** File offset of chunk byte n. */
export function dataPosition(n: number): number {
  return CHUNK_TABLE_BYTES + n;
}

/** File offset of the checksum word of block b. */
export function wordPosition(b: number): number {
  return 4 * b;
}

/** The chunk's size for a file of fileSize bytes. */
export function logicalSize(fileSize: number): number {
  return Math.max(0, fileSize - CHUNK_TABLE_BYTES);
}

/** The file size of a chunk of `size` bytes. */
export function fileSizeFor(size: number): number {
  return size === 0 ? 0 : CHUNK_TABLE_BYTES + size;
}

/** A whole chunk file's data, in chunk order (tests and tools that read files directly). */
export function chunkFileData(file: Buffer): Buffer {
  return file.subarray(Math.min(file.length, CHUNK_TABLE_BYTES));
}

/** A whole chunk file's checksum words, in block order, for its data's blocks. */
export function chunkFileWords(file: Buffer): Buffer {
  const out = Buffer.alloc(Math.ceil(logicalSize(file.length) / BLOCK_BYTES) * 4);
  file.copy(out, 0, 0, Math.min(out.length, file.length));
  return out;
}
