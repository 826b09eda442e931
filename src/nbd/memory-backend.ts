import type { BackendCapabilities, BlockBackend, Extent, WriteOptions, ZeroOptions } from './backend.js';

/** Bytes per page of the memory backend: the unit of allocation and of block status. */
export const MEMORY_PAGE_BYTES = 64 * 1024;

/** Shared zeroes for reads of unallocated pages; never written. */
const ZERO_PAGE = Buffer.alloc(MEMORY_PAGE_BYTES);

const CAPABILITIES: BackendCapabilities = {
  readOnly: false,
  flush: true,
  fua: true,
  trim: true,
  zero: true,
  fastZero: true,
  cache: true,
  multiConn: true,
  extents: true,
};

/**
 * A sparse RAM disk: a Map of fixed-size pages, allocated on first write
 * and freed by trim/zero. Unallocated pages read as zeroes and report as
 * holes. Nothing is durable, so flush and FUA have nothing to do.
 */
export class MemoryBackend implements BlockBackend {
  readonly capabilities = CAPABILITIES;
  private readonly pages = new Map<number, Buffer>();

  constructor(readonly size: number) {}

  /** Allocated pages (tests, metrics). */
  get allocatedBytes(): number {
    return this.pages.size * MEMORY_PAGE_BYTES;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const first = Math.floor(offset / MEMORY_PAGE_BYTES);
    const within = offset - first * MEMORY_PAGE_BYTES;
    if (within + length <= MEMORY_PAGE_BYTES) {
      // One page: hand out a view. The reply is queued on the socket before
      // any later request can change the page, so the view is safe.
      const page = this.pages.get(first);
      return page ? page.subarray(within, within + length) : Buffer.alloc(length);
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / MEMORY_PAGE_BYTES);
      const start = at - index * MEMORY_PAGE_BYTES;
      const count = Math.min(MEMORY_PAGE_BYTES - start, length - done);
      const page = this.pages.get(index);
      if (page) page.copy(out, done, start, start + count);
      else out.fill(0, done, done + count);
      done += count;
    }
    return out;
  }

  async readv(offset: number, length: number): Promise<Buffer[]> {
    const out: Buffer[] = [];
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / MEMORY_PAGE_BYTES);
      const start = at - index * MEMORY_PAGE_BYTES;
      const count = Math.min(MEMORY_PAGE_BYTES - start, length - done);
      const page = this.pages.get(index);
      out.push(page ? page.subarray(start, start + count) : ZERO_PAGE.subarray(0, count));
      done += count;
    }
    return out;
  }

  async writev(offset: number, data: readonly Buffer[], options: WriteOptions): Promise<void> {
    let at = offset;
    for (const b of data) {
      this.writeSync(at, b);
      at += b.length;
    }
    void options;
  }

  async write(offset: number, data: Buffer, _options: WriteOptions): Promise<void> {
    this.writeSync(offset, data);
  }

  private writeSync(offset: number, data: Buffer): void {
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const index = Math.floor(at / MEMORY_PAGE_BYTES);
      const start = at - index * MEMORY_PAGE_BYTES;
      const count = Math.min(MEMORY_PAGE_BYTES - start, data.length - done);
      let page = this.pages.get(index);
      if (!page) {
        page = count === MEMORY_PAGE_BYTES ? Buffer.allocUnsafe(MEMORY_PAGE_BYTES) : Buffer.alloc(MEMORY_PAGE_BYTES);
        this.pages.set(index, page);
      }
      data.copy(page, start, done, done + count);
      done += count;
    }
  }

  async flush(): Promise<void> {}

  async trim(offset: number, length: number, _options: WriteOptions): Promise<void> {
    this.zeroRange(offset, length, true);
  }

  async zero(offset: number, length: number, options: ZeroOptions): Promise<void> {
    this.zeroRange(offset, length, options.mayTrim);
  }

  async cache(_offset: number, _length: number): Promise<void> {}

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    const out: Extent[] = [];
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / MEMORY_PAGE_BYTES);
      const count = Math.min((index + 1) * MEMORY_PAGE_BYTES - at, length - done);
      const hole = !this.pages.has(index);
      const prev = out[out.length - 1];
      if (prev && prev.hole === hole) out[out.length - 1] = { length: prev.length + count, hole, zero: hole };
      else out.push({ length: count, hole, zero: hole });
      done += count;
    }
    return out;
  }

  async close(): Promise<void> {
    this.pages.clear();
  }

  /** Frees whole pages when allowed; zero-fills partial ones (and whole ones under NO_HOLE). */
  private zeroRange(offset: number, length: number, mayFree: boolean): void {
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / MEMORY_PAGE_BYTES);
      const start = at - index * MEMORY_PAGE_BYTES;
      const count = Math.min(MEMORY_PAGE_BYTES - start, length - done);
      const page = this.pages.get(index);
      if (count === MEMORY_PAGE_BYTES && mayFree) {
        this.pages.delete(index);
      } else if (page) {
        page.fill(0, start, start + count);
      } else if (!mayFree) {
        this.pages.set(index, Buffer.alloc(MEMORY_PAGE_BYTES));
      }
      done += count;
    }
  }
}
