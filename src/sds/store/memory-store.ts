/**
 * Chunks in memory, for simulation tests. Keeps what was flushed apart from
 * what was merely written, so a test can "crash" it (crash()) and check that
 * exactly the flushed or durable writes survive.
 */
import { assert } from '../../shared/errors.js';
import {
  chunkName, parseChunkName, type ChunkInfo, type ChunkKey, type ChunkStore, type StoreCapacity, type TreeChunk,
} from './chunk-store.js';

export interface MemoryChunkStoreOptions {
  capacityBytes?: number;
}

export class MemoryChunkStore implements ChunkStore {
  /** pgId -> chunk name -> bytes (length = chunk size). */
  private live = new Map<number, Map<string, Buffer>>();
  private durableCopy = new Map<number, Map<string, Buffer>>();
  private dirty = new Set<string>();
  private readonly capacityBytes: number;

  constructor(opts: MemoryChunkStoreOptions = {}) {
    this.capacityBytes = opts.capacityBytes ?? 1024 ** 4;
  }

  async write(pgId: number, key: ChunkKey, offset: number, data: Buffer, durable = false): Promise<void> {
    assert(data.length > 0 && offset >= 0, 'write of an empty or negative range');
    this.put(this.live, pgId, chunkName(key), offset, data);
    this.markDirty(pgId, key, durable);
  }

  async zero(pgId: number, key: ChunkKey, offset: number, length: number, durable = false): Promise<void> {
    const chunk = this.live.get(pgId)?.get(chunkName(key));
    if (!chunk) return;
    // A zero covering every written byte frees the chunk, as the file store does.
    if (offset === 0 && length >= chunk.length) this.live.get(pgId)!.delete(chunkName(key));
    else this.put(this.live, pgId, chunkName(key), offset, Buffer.alloc(length));
    this.markDirty(pgId, key, durable);
  }

  async read(pgId: number, key: ChunkKey, offset: number, length: number): Promise<Buffer | null> {
    const chunk = this.live.get(pgId)?.get(chunkName(key));
    if (!chunk) return null;
    const out = Buffer.alloc(length);
    if (offset < chunk.length) chunk.copy(out, 0, offset, Math.min(chunk.length, offset + length));
    return out;
  }

  async flush(): Promise<void> {
    for (const id of this.dirty) this.persist(id);
    this.dirty.clear();
  }

  async stat(pgId: number, key: ChunkKey): Promise<ChunkInfo | null> {
    const chunk = this.live.get(pgId)?.get(chunkName(key));
    return chunk ? { ...key, sizeBytes: chunk.length } : null;
  }

  async list(pgId: number): Promise<ChunkInfo[]> {
    const out: ChunkInfo[] = [];
    for (const [name, buf] of this.live.get(pgId) ?? []) out.push({ ...parseChunkName(name)!, sizeBytes: buf.length });
    return out;
  }

  async treeChunks(treeId: number): Promise<TreeChunk[]> {
    const out: TreeChunk[] = [];
    for (const [pgId, chunks] of this.live) {
      for (const [name, buf] of chunks) {
        const key = parseChunkName(name)!;
        if (key.treeId === treeId) out.push({ pgId, info: { ...key, sizeBytes: buf.length } });
      }
    }
    return out;
  }

  async pgs(): Promise<number[]> {
    return [...this.live.keys()].sort((a, b) => a - b);
  }

  async dropPg(pgId: number): Promise<void> {
    this.live.delete(pgId);
    this.durableCopy.delete(pgId);
    for (const id of this.dirty) if (id.startsWith(`${pgId}/`)) this.dirty.delete(id);
  }

  async capacity(): Promise<StoreCapacity> {
    let used = 0;
    let chunks = 0;
    for (const pg of this.live.values()) for (const buf of pg.values()) { used += buf.length; chunks++; }
    return { totalBytes: this.capacityBytes, usedBytes: used, freeBytes: Math.max(0, this.capacityBytes - used), chunks };
  }

  async close(): Promise<void> {}

  /** Simulated power loss: everything not flushed or written durably is gone. */
  crash(): void {
    this.live = new Map([...this.durableCopy].map(([pg, m]) => [pg, new Map([...m].map(([n, b]) => [n, Buffer.from(b)]))]));
    this.dirty.clear();
  }

  private markDirty(pgId: number, key: ChunkKey, durable: boolean): void {
    const id = `${pgId}/${chunkName(key)}`;
    if (durable) this.persist(id);
    else this.dirty.add(id);
  }

  private persist(id: string): void {
    const slash = id.indexOf('/');
    const pgId = Number(id.slice(0, slash));
    const name = id.slice(slash + 1);
    const buf = this.live.get(pgId)?.get(name);
    if (!buf) {
      this.durableCopy.get(pgId)?.delete(name); // removed: the removal is now durable
      return;
    }
    let pg = this.durableCopy.get(pgId);
    if (!pg) this.durableCopy.set(pgId, (pg = new Map()));
    pg.set(name, Buffer.from(buf));
  }

  private put(where: Map<number, Map<string, Buffer>>, pgId: number, name: string, offset: number, data: Buffer): void {
    let pg = where.get(pgId);
    if (!pg) where.set(pgId, (pg = new Map()));
    let chunk = pg.get(name) ?? Buffer.alloc(0);
    if (chunk.length < offset + data.length) {
      const grown = Buffer.alloc(offset + data.length);
      chunk.copy(grown);
      chunk = grown;
      pg.set(name, chunk);
    }
    data.copy(chunk, offset);
  }
}
