/**
 * The storage interface of an SDS: chunks keyed by (volume-tree id, chunk
 * index, layer id), grouped by the PG they belong to. The data server only
 * talks to this interface; FileChunkStore keeps chunks in sparse files,
 * MemoryChunkStore keeps them in memory for simulation tests.
 */

export interface ChunkKey {
  readonly treeId: number;
  readonly chunkIndex: number;
  /** 0 = the volume's own data; snapshots add layers later without a format change. */
  readonly layerId: number;
}

export interface ChunkInfo extends ChunkKey {
  /** Highest byte ever written + 1 (the chunk reads as zeros beyond it). */
  readonly sizeBytes: number;
}

export interface TreeChunk {
  readonly pgId: number;
  readonly info: ChunkInfo;
}

export interface StoreCapacity {
  /** Capacity offered to the cluster (configured, or the file system size). */
  readonly totalBytes: number;
  /** Logical bytes of all chunks (their sizes). */
  readonly usedBytes: number;
  /** What can still be written: min(total - used, free space of the file system). */
  readonly freeBytes: number;
  readonly chunks: number;
}

export interface ChecksumAlert {
  readonly pgId: number;
  readonly key: ChunkKey;
  /** Byte offset of the bad 4 KiB block within the chunk. */
  readonly blockOffset: number;
}

export interface ChunkStore {
  /**
   * Writes data at offset of the chunk, creating it if needed. With durable,
   * the chunk is on stable storage (fdatasync) before the promise resolves.
   * blockCrcs: the CRC32 of each 4 KiB block of data, when the caller has
   * them already (4 KiB aligned writes; see shared/crc32.ts).
   */
  write(pgId: number, key: ChunkKey, offset: number, data: Buffer, durable?: boolean, blockCrcs?: Uint32Array): Promise<void>;
  /**
   * Reads length bytes at offset; an unwritten range reads as zeros. Resolves
   * null when the chunk does not exist. A checksum mismatch rejects with
   * PFLEX_ERR_IO (and raises an alert): corrupt data is never returned.
   * For a 4 KiB aligned range a store may set crcOut.crc to the CRC32 of the
   * returned bytes (folded from the block checks it did anyway).
   */
  read(pgId: number, key: ChunkKey, offset: number, length: number, crcOut?: { crc?: number }): Promise<Buffer | null>;
  /** Makes the range read as zeros (TRIM and WRITE_ZEROES); a missing chunk stays missing. */
  zero(pgId: number, key: ChunkKey, offset: number, length: number, durable?: boolean): Promise<void>;
  /** Makes every write completed before the call durable (fdatasync of exactly the dirtied chunks). */
  flush(): Promise<void>;
  /** Size of one chunk, or null when it does not exist. */
  stat(pgId: number, key: ChunkKey): Promise<ChunkInfo | null>;
  /** Every chunk stored for a PG (rebuild source listing). */
  list(pgId: number): Promise<ChunkInfo[]>;
  /** Every chunk of a volume tree stored here, whatever its PG (reclaim of a deleted volume, trim after a shrink). */
  treeChunks(treeId: number): Promise<TreeChunk[]>;
  /** PG ids with at least one chunk stored here. */
  pgs(): Promise<number[]>;
  /** Forgets all data of a PG (this SDS left its replica set). */
  dropPg(pgId: number): Promise<void>;
  capacity(): Promise<StoreCapacity>;
  close(): Promise<void>;
}

export function chunkName(key: ChunkKey): string {
  return `${key.treeId}-${key.chunkIndex}-${key.layerId}`;
}

export function parseChunkName(name: string): ChunkKey | null {
  const m = /^(\d+)-(\d+)-(\d+)$/.exec(name);
  if (!m) return null;
  return { treeId: Number(m[1]), chunkIndex: Number(m[2]), layerId: Number(m[3]) };
}
