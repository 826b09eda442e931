/**
 * Chunks as sparse files under the storage root, one file per chunk:
 *
 *   <root>/pg-<pgId>/<treeId>-<chunkIndex>-<layerId>.chk
 *
 * holding the chunk's data and a CRC32 word per 4 KiB block, the table of
 * words first (chunk-file-layout.ts). One file, not a data file and a
 * checksum file: a durable write then costs one fdatasync (one journal
 * commit) instead of two, and a new chunk one create (bench/chunk-store.ts;
 * docs/benchmarks.md "One file per chunk"). A store in the earlier two-file
 * layout (.dat + .crc) is converted when it is opened.
 *
 * The directory per PG is the index used to list a PG's chunks for rebuild.
 * Open files are cached (bounded LRU); every operation on a chunk holds its
 * reader/writer lock, so a write's data and checksums change together as far
 * as any reader can tell. fdatasync happens on flush() for exactly the chunks
 * dirtied since the previous flush, or at once for a durable (FUA) write.
 *
 * Crash consistency: data and checksum writes are two pwrites; a crash between
 * them can leave a block whose checksum disagrees. That block then reads as an
 * IO error (never as wrong data) and is repaired from a replica.
 */
import { constants as FS, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { PflexError, assert } from '../../shared/errors.js';
import { openChunksMax } from '../limits.js';
import { BLOCK_BYTES, blockCrc, blockGood, blockSpan } from './block-crc.js';
import { blockAligned, combineBlock } from '../../shared/crc32.js';
import {
  chunkName, parseChunkName, type ChecksumAlert, type ChunkInfo, type ChunkKey, type ChunkStore, type StoreCapacity, type TreeChunk,
} from './chunk-store.js';
import { KeyedRwLock } from './rw-lock.js';
import {
  CHUNK_FILE_SUFFIX, dataPosition, fileSizeFor, logicalSize, wordPosition,
} from './chunk-file-layout.js';

type FileHandle = fsp.FileHandle;

/** The earlier layout, converted at open: data and checksums in two files. */
const LEGACY_DATA = '.dat';
const LEGACY_CRC = '.crc';
const CONVERTING = `${CHUNK_FILE_SUFFIX}.tmp`;
const CONVERSIONS_AT_ONCE = 8;

interface OpenChunk {
  readonly id: string;
  readonly pgId: number;
  readonly fh: FileHandle;
  refs: number;
  closed: boolean;
}

export interface FileChunkStoreOptions {
  root: string;
  /** Capacity offered to the cluster; default: the size of the file system. */
  capacityBytes?: number;
  openChunksMax?: number;
  onChecksumError?: (alert: ChecksumAlert) => void;
  /** After a PG directory's chunks were converted from the two-file layout at open (a long start is visible). */
  onConverted?: (pg: { pgId: number; chunks: number; ms: number }) => void;
}

const ZEROS = Buffer.alloc(1024 * 1024);

export class FileChunkStore implements ChunkStore {
  private readonly root: string;
  private readonly openMax: number;
  private readonly lru = new Map<string, OpenChunk>();
  private readonly opening = new Map<string, Promise<OpenChunk | null>>();
  private readonly locks = new KeyedRwLock();
  /** Logical size of every chunk (for capacity and listing without stat). */
  private readonly sizes = new Map<string, number>();
  private usedBytes = 0;
  private dirty = new Set<string>();
  private dirtyDirs = new Set<string>();
  private readonly knownDirs = new Set<string>();
  private closed = false;

  private constructor(private readonly opts: FileChunkStoreOptions) {
    this.root = opts.root;
    this.openMax = opts.openChunksMax ?? openChunksMax;
  }

  /** Opens (creating) the storage root and indexes the chunks already there. */
  static async open(opts: FileChunkStoreOptions): Promise<FileChunkStore> {
    const store = new FileChunkStore(opts);
    await fsp.mkdir(opts.root, { recursive: true });
    await store.scan();
    return store;
  }

  private async scan(): Promise<void> {
    for (const pgId of await this.pgs()) {
      const dir = this.pgDir(pgId);
      this.knownDirs.add(dir);
      let names = await fsp.readdir(dir);
      if (names.some(isLegacy)) {
        const started = performance.now();
        const chunks = await convertLegacyChunks(dir, names);
        await syncDir(dir);
        if (chunks > 0) this.opts.onConverted?.({ pgId, chunks, ms: Math.round(performance.now() - started) });
        names = await fsp.readdir(dir);
      }
      for (const name of names) {
        const base = name.slice(0, -CHUNK_FILE_SUFFIX.length);
        if (!name.endsWith(CHUNK_FILE_SUFFIX) || !parseChunkName(base)) continue;
        const st = await fsp.stat(join(dir, name));
        this.setSize(`${pgId}/${base}`, logicalSize(st.size));
      }
    }
  }

  async write(pgId: number, key: ChunkKey, offset: number, data: Buffer, durable = false, blockCrcs?: Uint32Array): Promise<void> {
    assert(data.length > 0 && offset >= 0, 'write of an empty or negative range');
    const id = chunkId(pgId, key);
    const wait = this.locks.acquire(id, true);
    if (wait) await wait;
    let chunk: OpenChunk | null = null;
    try {
      chunk = await this.acquire(pgId, key, id, true);
      assert(chunk, 'create of a chunk failed without an error');
      const crcs = blockCrcs && blockAligned(offset, data.length) ? crcWords(blockCrcs, data.length / BLOCK_BYTES)
        : await this.blockCrcsFor(chunk, pgId, key, offset, data);
      await Promise.all([writeData(chunk.fh, data, offset), writeWords(chunk.fh, crcs, blockSpan(offset, data.length).first)]);
      this.grow(id, offset + data.length);
      if (durable) await Promise.all([chunk.fh.datasync(), this.syncDirs()]);
      else this.dirty.add(id);
    } catch (err) {
      throw asIoError(err, 'chunk write failed');
    } finally {
      if (chunk) this.releaseChunk(chunk);
      this.locks.release(id, true);
    }
  }

  async zero(pgId: number, key: ChunkKey, offset: number, length: number, durable = false): Promise<void> {
    const id = chunkId(pgId, key);
    if (!this.sizes.has(id)) return; // an absent chunk already reads as zeros
    if (offset === 0 && (await this.removeIfCovered(pgId, key, id, length, durable))) return;
    // Zeroing is a write of zeros, in slices so no large buffer is allocated.
    for (let pos = offset; pos < offset + length; pos += ZEROS.length) {
      const n = Math.min(ZEROS.length, offset + length - pos);
      await this.write(pgId, key, pos, ZEROS.subarray(0, n), durable);
    }
  }

  async read(pgId: number, key: ChunkKey, offset: number, length: number, crcOut?: { crc?: number }): Promise<Buffer | null> {
    assert(length > 0 && offset >= 0, 'read of an empty or negative range');
    const id = chunkId(pgId, key);
    const wait = this.locks.acquire(id, false);
    if (wait) await wait;
    let chunk: OpenChunk | null = null;
    try {
      chunk = await this.acquire(pgId, key, id, false);
      if (!chunk) return null;
      const { first, last } = blockSpan(offset, length);
      const start = first * BLOCK_BYTES;
      const buf = Buffer.allocUnsafe((last - first + 1) * BLOCK_BYTES);
      const words = Buffer.allocUnsafe((last - first + 1) * 4);
      await Promise.all([readData(chunk.fh, buf, start), readWords(chunk.fh, words, first)]);
      let whole = 0;
      for (let b = 0; b <= last - first; b++) {
        const actual = blockCrc(buf.subarray(b * BLOCK_BYTES, (b + 1) * BLOCK_BYTES));
        if (!blockGood(words.readUInt32LE(b * 4), actual)) this.corrupt(pgId, key, start + b * BLOCK_BYTES);
        whole = b === 0 ? actual : combineBlock(whole, actual);
      }
      if (crcOut && start === offset && buf.length === length) crcOut.crc = whole;
      return buf.subarray(offset - start, offset - start + length);
    } catch (err) {
      throw asIoError(err, 'chunk read failed');
    } finally {
      if (chunk) this.releaseChunk(chunk);
      this.locks.release(id, false);
    }
  }

  async flush(): Promise<void> {
    const ids = this.dirty;
    const dirs = this.dirtyDirs;
    this.dirty = new Set();
    this.dirtyDirs = new Set();
    try {
      await Promise.all([...ids].map((id) => this.syncChunk(id)));
      await Promise.all([...dirs].map((d) => syncDir(d)));
    } catch (err) {
      // Not durable after all: keep them dirty so the next flush retries.
      for (const id of ids) this.dirty.add(id);
      for (const d of dirs) this.dirtyDirs.add(d);
      throw asIoError(err, 'flush failed');
    }
  }

  async stat(pgId: number, key: ChunkKey): Promise<ChunkInfo | null> {
    const size = this.sizes.get(chunkId(pgId, key));
    return size === undefined ? null : { ...key, sizeBytes: size };
  }

  async list(pgId: number): Promise<ChunkInfo[]> {
    const prefix = `${pgId}/`;
    const out: ChunkInfo[] = [];
    for (const [id, size] of this.sizes) {
      if (!id.startsWith(prefix)) continue;
      const key = parseChunkName(id.slice(prefix.length));
      assert(key, `bad chunk id ${id}`);
      out.push({ ...key, sizeBytes: size });
    }
    return out;
  }

  async treeChunks(treeId: number): Promise<TreeChunk[]> {
    const out: TreeChunk[] = [];
    for (const [id, size] of this.sizes) {
      const slash = id.indexOf('/');
      const key = parseChunkName(id.slice(slash + 1));
      assert(key, `bad chunk id ${id}`);
      if (key.treeId === treeId) out.push({ pgId: Number(id.slice(0, slash)), info: { ...key, sizeBytes: size } });
    }
    return out;
  }

  async pgs(): Promise<number[]> {
    const out: number[] = [];
    for (const name of await fsp.readdir(this.root)) {
      const m = /^pg-(\d+)$/.exec(name);
      if (m) out.push(Number(m[1]));
    }
    return out.sort((a, b) => a - b);
  }

  async dropPg(pgId: number): Promise<void> {
    const prefix = `${pgId}/`;
    for (const [id, chunk] of this.lru) {
      if (chunk.pgId !== pgId) continue;
      this.lru.delete(id);
      if (chunk.refs === 0) await closeChunk(chunk);
      else chunk.closed = true; // closed by its last user
    }
    for (const [id, size] of this.sizes) {
      if (!id.startsWith(prefix)) continue;
      this.sizes.delete(id);
      this.dirty.delete(id);
      this.usedBytes -= size;
    }
    const dir = this.pgDir(pgId);
    this.knownDirs.delete(dir);
    this.dirtyDirs.delete(dir);
    await fsp.rm(dir, { recursive: true, force: true });
    await syncDir(this.root);
  }

  async capacity(): Promise<StoreCapacity> {
    const fs = await fsp.statfs(this.root);
    const fsFree = fs.bavail * fs.bsize;
    const total = this.opts.capacityBytes ?? fs.blocks * fs.bsize;
    return {
      totalBytes: total,
      usedBytes: this.usedBytes,
      freeBytes: Math.max(0, Math.min(total - this.usedBytes, fsFree)),
      chunks: this.sizes.size,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush().catch(() => undefined);
    const all = [...this.lru.values()];
    this.lru.clear();
    await Promise.all(all.map((c) => closeChunk(c)));
  }

  /** Path of a chunk's file (tests use it to damage a chunk on purpose). */
  chunkPath(pgId: number, key: ChunkKey): string {
    return join(this.pgDir(pgId), `${chunkName(key)}${CHUNK_FILE_SUFFIX}`);
  }

  // ---- internals ----------------------------------------------------------

  /**
   * Deletes a chunk whose every written byte a zero from offset 0 covers: it
   * then reads as absent (zeros, a hole in block status) and its space is
   * freed. False when the chunk has grown past `length` meanwhile. The unlink
   * is durable with the PG directory's fsync (at once, or on the next flush).
   */
  private async removeIfCovered(pgId: number, key: ChunkKey, id: string, length: number, durable: boolean): Promise<boolean> {
    const wait = this.locks.acquire(id, true);
    if (wait) await wait;
    try {
      const size = this.sizes.get(id);
      if (size === undefined) return true;
      if (length < size) return false;
      const cached = this.lru.get(id);
      if (cached) {
        this.lru.delete(id);
        if (cached.refs === 0) await closeChunk(cached);
        else cached.closed = true;
      }
      await fsp.rm(this.chunkPath(pgId, key), { force: true });
      this.sizes.delete(id);
      this.dirty.delete(id);
      this.usedBytes -= size;
      if (durable) await syncDir(this.pgDir(pgId));
      else this.dirtyDirs.add(this.pgDir(pgId));
      return true;
    } catch (err) {
      throw asIoError(err, 'chunk removal failed');
    } finally {
      this.locks.release(id, true);
    }
  }

  private pgDir(pgId: number): string {
    return join(this.root, `pg-${pgId}`);
  }

  /**
   * CRC words for every block the write touches. A block only partly covered
   * is read back, verified and merged first, so its checksum is right and a
   * corrupt old block is never blessed with a fresh checksum.
   */
  private async blockCrcsFor(chunk: OpenChunk, pgId: number, key: ChunkKey, offset: number, data: Buffer): Promise<Buffer> {
    const { first, last } = blockSpan(offset, data.length);
    const crcs = Buffer.allocUnsafe((last - first + 1) * 4);
    for (let b = first; b <= last; b++) {
      const blockStart = b * BLOCK_BYTES;
      const lo = Math.max(offset, blockStart);
      const hi = Math.min(offset + data.length, blockStart + BLOCK_BYTES);
      let crc: number;
      if (lo === blockStart && hi === blockStart + BLOCK_BYTES) {
        crc = blockCrc(data.subarray(blockStart - offset, blockStart - offset + BLOCK_BYTES));
      } else {
        const block = Buffer.allocUnsafe(BLOCK_BYTES);
        const word = Buffer.allocUnsafe(4);
        await Promise.all([readData(chunk.fh, block, blockStart), readWords(chunk.fh, word, b)]);
        if (!blockGood(word.readUInt32LE(0), blockCrc(block))) this.corrupt(pgId, key, blockStart);
        data.copy(block, lo - blockStart, lo - offset, hi - offset);
        crc = blockCrc(block);
      }
      crcs.writeUInt32LE(crc, (b - first) * 4);
    }
    return crcs;
  }

  private corrupt(pgId: number, key: ChunkKey, blockOffset: number): never {
    this.opts.onChecksumError?.({ pgId, key, blockOffset });
    throw new PflexError('PFLEX_ERR_IO', `checksum mismatch in pg ${pgId} chunk ${chunkName(key)} at block offset ${blockOffset}`, {
      pgId, chunk: chunkName(key), blockOffset, checksum: true,
    });
  }

  /** The open files of a chunk (creating it if asked), with a reference held; null when absent. */
  private async acquire(pgId: number, key: ChunkKey, id: string, create: boolean): Promise<OpenChunk | null> {
    for (;;) {
      const cached = this.lru.get(id);
      if (cached) {
        this.lru.delete(id);
        this.lru.set(id, cached);
        cached.refs++;
        return cached;
      }
      const pending = this.opening.get(id);
      if (pending) {
        const got = await pending;
        if (got || !create) {
          if (!got) return null;
          continue; // now cached: take a reference above
        }
      }
      const p = this.openChunk(pgId, key, id, create);
      this.opening.set(id, p);
      try {
        const chunk = await p;
        if (!chunk) return null;
        this.lru.set(id, chunk);
        chunk.refs++;
        this.evict();
        return chunk;
      } finally {
        this.opening.delete(id);
      }
    }
  }

  private async openChunk(pgId: number, key: ChunkKey, id: string, create: boolean): Promise<OpenChunk | null> {
    const dir = this.pgDir(pgId);
    if (create && !this.knownDirs.has(dir)) {
      await fsp.mkdir(dir, { recursive: true });
      this.knownDirs.add(dir);
      this.dirtyDirs.add(this.root);
    }
    let fh: FileHandle;
    try {
      fh = await fsp.open(this.chunkPath(pgId, key), create ? FS.O_RDWR | FS.O_CREAT : FS.O_RDWR, 0o600);
    } catch (err) {
      if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (!this.sizes.has(id)) {
      this.setSize(id, 0);
      this.dirtyDirs.add(dir);
    }
    return { id, pgId, fh, refs: 0, closed: false };
  }

  private releaseChunk(chunk: OpenChunk): void {
    chunk.refs--;
    if (chunk.refs === 0 && chunk.closed) void closeChunk(chunk);
    else this.evict();
  }

  private evict(): void {
    if (this.lru.size <= this.openMax) return;
    for (const [id, chunk] of this.lru) {
      if (this.lru.size <= this.openMax) break;
      if (chunk.refs > 0) continue;
      this.lru.delete(id);
      void closeChunk(chunk);
    }
  }

  private async syncChunk(id: string): Promise<void> {
    const slash = id.indexOf('/');
    const pgId = Number(id.slice(0, slash));
    const key = parseChunkName(id.slice(slash + 1));
    assert(key, `bad chunk id ${id}`);
    if (!this.sizes.has(id)) return; // dropped meanwhile
    const wait = this.locks.acquire(id, false);
    if (wait) await wait;
    let chunk: OpenChunk | null = null;
    try {
      chunk = await this.acquire(pgId, key, id, false);
      if (chunk) await chunk.fh.datasync();
    } finally {
      if (chunk) this.releaseChunk(chunk);
      this.locks.release(id, false);
    }
  }

  private async syncDirs(): Promise<void> {
    if (this.dirtyDirs.size === 0) return;
    const dirs = this.dirtyDirs;
    this.dirtyDirs = new Set();
    await Promise.all([...dirs].map((d) => syncDir(d)));
  }

  private setSize(id: string, size: number): void {
    this.usedBytes += size - (this.sizes.get(id) ?? 0);
    this.sizes.set(id, size);
  }

  private grow(id: string, end: number): void {
    if (end > (this.sizes.get(id) ?? 0)) this.setSize(id, end);
  }
}

function crcWords(crcs: Uint32Array, n: number): Buffer {
  assert(crcs.length >= n, 'fewer block CRCs than blocks');
  const out = Buffer.allocUnsafe(n * 4);
  for (let i = 0; i < n; i++) out.writeUInt32LE(crcs[i]!, i * 4);
  return out;
}

function chunkId(pgId: number, key: ChunkKey): string {
  return `${pgId}/${key.treeId}-${key.chunkIndex}-${key.layerId}`;
}

/** Chunk data at a chunk offset. */
function writeData(fh: FileHandle, data: Buffer, offset: number): Promise<void> {
  return writeFully(fh, data, dataPosition(offset));
}

/** Checksum words of the blocks from `first`. */
function writeWords(fh: FileHandle, words: Buffer, first: number): Promise<void> {
  return writeFully(fh, words, wordPosition(first));
}

function readData(fh: FileHandle, buf: Buffer, offset: number): Promise<void> {
  return readPadded(fh, buf, dataPosition(offset));
}

function readWords(fh: FileHandle, words: Buffer, first: number): Promise<void> {
  return readPadded(fh, words, wordPosition(first));
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** Fills buf from position; bytes past the end of the file read as zeros (sparse semantics). */
async function readPadded(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  if (done < buf.length) buf.fill(0, done);
}

async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(dir, FS.O_RDONLY);
    await fh.sync();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  } finally {
    await fh?.close();
  }
}

async function closeChunk(chunk: OpenChunk): Promise<void> {
  chunk.closed = true;
  await chunk.fh.close().catch(() => undefined);
}

/** A file of the two-file layout, or a conversion of one cut short. */
function isLegacy(name: string): boolean {
  return name.endsWith(LEGACY_DATA) || name.endsWith(LEGACY_CRC) || name.endsWith(CONVERTING);
}

/**
 * Converts the chunks of one PG directory (its entries: names) from the
 * two-file layout (.dat + .crc) into chunk files, each through a temporary
 * file renamed into place, so a crash at any point leaves either the old
 * pair or the new file (and perhaps the old pair beside it, removed on the
 * next open). Returns how many chunks it converted.
 */
async function convertLegacyChunks(dir: string, names: string[]): Promise<number> {
  for (const name of names.filter((n) => n.endsWith(CONVERTING))) {
    await fsp.rm(join(dir, name), { force: true }); // a conversion cut short: its .dat is still there
  }
  const have = new Set(names);
  let chunks = 0;
  const pairs = names.filter((n) => n.endsWith(LEGACY_DATA) && parseChunkName(n.slice(0, -LEGACY_DATA.length)));
  // A few at a time: each waits mostly on its own fdatasync.
  for (let i = 0; i < pairs.length; i += CONVERSIONS_AT_ONCE) {
    await Promise.all(pairs.slice(i, i + CONVERSIONS_AT_ONCE).map(async (name) => {
      const stem = name.slice(0, -LEGACY_DATA.length);
      const base = join(dir, stem);
      if (!have.has(`${stem}${CHUNK_FILE_SUFFIX}`)) {
        await convertChunk(base);
        chunks++;
      }
      await Promise.all([fsp.rm(`${base}${LEGACY_DATA}`, { force: true }), fsp.rm(`${base}${LEGACY_CRC}`, { force: true })]);
    }));
  }
  // A checksum file whose data file is gone belongs to no chunk.
  for (const name of names) {
    if (name.endsWith(LEGACY_CRC) && !have.has(`${name.slice(0, -LEGACY_CRC.length)}${LEGACY_DATA}`)) await fsp.rm(join(dir, name), { force: true });
  }
  return chunks;
}

/** One chunk from base.dat + base.crc into base.chk, holes kept as holes. */
async function convertChunk(base: string): Promise<void> {
  const tmp = `${base}${CONVERTING}`;
  const out = await fsp.open(tmp, FS.O_RDWR | FS.O_CREAT | FS.O_TRUNC, 0o600);
  try {
    const table = await fsp.readFile(`${base}${LEGACY_CRC}`).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return Buffer.alloc(0); // every block then reads as never written
      throw err;
    });
    const words = table.subarray(0, table.length - (table.length % 4)); // a torn last word belongs to no block
    assert(words.length <= dataPosition(0), `checksum file ${base}${LEGACY_CRC} is larger than any chunk's table`);
    if (words.length > 0) await writeWords(out, words, 0);
    const data = await fsp.open(`${base}${LEGACY_DATA}`, FS.O_RDONLY);
    try {
      const size = (await data.stat()).size;
      const buf = Buffer.allocUnsafe(ZEROS.length);
      for (let pos = 0; pos < size; pos += buf.length) {
        const n = Math.min(buf.length, size - pos);
        await readPadded(data, buf.subarray(0, n), pos);
        // Runs of blocks that are not all zeros, each in one pwrite; zero blocks stay holes.
        let run = -1;
        for (let b = 0; b < n; b += BLOCK_BYTES) {
          const end = Math.min(n, b + BLOCK_BYTES);
          const zero = buf.subarray(b, end).equals(ZEROS.subarray(0, end - b));
          if (!zero && run < 0) run = b;
          if (zero && run >= 0) {
            await writeData(out, buf.subarray(run, b), pos + run);
            run = -1;
          }
        }
        if (run >= 0) await writeData(out, buf.subarray(run, n), pos + run);
      }
      await out.truncate(fileSizeFor(size));
    } finally {
      await data.close();
    }
    await out.datasync();
  } finally {
    await out.close();
  }
  await fsp.rename(tmp, `${base}${CHUNK_FILE_SUFFIX}`);
}

function asIoError(err: unknown, message: string): PflexError {
  if (err instanceof PflexError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOSPC') return new PflexError('PFLEX_ERR_IO', 'no space left on the storage device', { errno: e.code, noSpace: true });
  if (e instanceof Error && e.message.startsWith('pflex assertion')) throw e;
  return new PflexError('PFLEX_ERR_IO', `${message}: ${e.message}`, { errno: e.code });
}
