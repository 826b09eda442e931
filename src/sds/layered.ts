/**
 * Chunks of a layered volume (docs/snapshots.md): a volume's layer sits on a
 * chain of frozen ancestor layers (its snapshots). A read falls through the
 * chain to the first layer that has the chunk; the first write to a chunk in
 * a layer copies the nearest ancestor's chunk into it (copy-on-write per
 * chunk) unless the write covers all of it. Every replica does the same
 * locally from the same ancestors, so replicas stay byte-identical.
 *
 * Writes to a chunk that has ancestors hold this module's per-chunk lock
 * (FIFO, exclusive) around "copy if absent, then write", so a second write
 * cannot slip between the copy and the first write, and writes apply in
 * arrival order as they do in the store. A chunk with no ancestors (a volume
 * that never had a snapshot) goes straight to the store.
 */
import type { ChunkKey, ChunkStore } from './store/chunk-store.js';
import { KeyedRwLock } from './store/rw-lock.js';

const ZEROS = Buffer.alloc(1024 * 1024);

export class LayeredChunks {
  private readonly locks = new KeyedRwLock();
  /** Copy-on-write copies made (metrics). */
  copies = 0;
  copiedBytes = 0;

  constructor(private readonly store: ChunkStore) {}

  /** ancestors: the layers under key.layerId, nearest first (empty: no snapshot below). */
  write(pg: number, key: ChunkKey, ancestors: readonly number[], offset: number, data: Buffer, durable: boolean, crcs?: Uint32Array): Promise<void> {
    if (ancestors.length === 0) return this.store.write(pg, key, offset, data, durable, crcs);
    return this.locked(pg, key, async () => {
      await this.copyUp(pg, key, ancestors, offset, data.length);
      await this.store.write(pg, key, offset, data, durable, crcs);
    });
  }

  /**
   * TRIM and WRITE_ZEROES. Over an ancestor's data the range must read as
   * zeros in this layer, so it is written as zeros (the store's zero would
   * delete a fully covered chunk, and the ancestor's data would show through).
   */
  zero(pg: number, key: ChunkKey, ancestors: readonly number[], offset: number, length: number, durable: boolean): Promise<void> {
    if (ancestors.length === 0) return this.store.zero(pg, key, offset, length, durable);
    return this.locked(pg, key, async () => {
      // No ancestor has the chunk: nothing shows through, the store may free it.
      if (!(await this.nearest(pg, key, ancestors))) return this.store.zero(pg, key, offset, length, durable);
      await this.copyUp(pg, key, ancestors, offset, length);
      for (let pos = offset; pos < offset + length; pos += ZEROS.length) {
        await this.store.write(pg, key, pos, ZEROS.subarray(0, Math.min(ZEROS.length, offset + length - pos)), durable);
      }
    });
  }

  /** The chunk as this layer sees it; null when no layer of the chain has it. */
  async read(pg: number, key: ChunkKey, ancestors: readonly number[], offset: number, length: number, crcOut?: { crc?: number }): Promise<Buffer | null> {
    const own = await this.store.read(pg, key, offset, length, crcOut);
    if (own || ancestors.length === 0) return own;
    for (const layerId of ancestors) {
      const data = await this.store.read(pg, { ...key, layerId }, offset, length, crcOut);
      if (data) return data;
    }
    return null;
  }

  /** First write of a chunk in this layer: copy the nearest ancestor's chunk unless [offset, offset+length) covers it. */
  private async copyUp(pg: number, key: ChunkKey, ancestors: readonly number[], offset: number, length: number): Promise<void> {
    if (await this.store.stat(pg, key)) return;
    const below = await this.nearest(pg, key, ancestors);
    if (!below || below.sizeBytes === 0 || (offset === 0 && length >= below.sizeBytes)) return;
    const data = await this.store.read(pg, below.key, 0, below.sizeBytes);
    if (!data) return; // dropped meanwhile (its PG left this SDS)
    await this.store.write(pg, key, 0, data, false);
    this.copies++;
    this.copiedBytes += data.length;
  }

  private async nearest(pg: number, key: ChunkKey, ancestors: readonly number[]): Promise<{ key: ChunkKey; sizeBytes: number } | null> {
    for (const layerId of ancestors) {
      const k = { ...key, layerId };
      const info = await this.store.stat(pg, k);
      if (info) return { key: k, sizeBytes: info.sizeBytes };
    }
    return null;
  }

  private async locked(pg: number, key: ChunkKey, fn: () => Promise<void>): Promise<void> {
    const id = `${pg}/${key.treeId}-${key.chunkIndex}-${key.layerId}`;
    const wait = this.locks.acquire(id, true);
    if (wait) await wait;
    try {
      await fn();
    } finally {
      this.locks.release(id, true);
    }
  }
}
