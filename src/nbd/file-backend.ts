import { open, type FileHandle } from 'node:fs/promises';
import type { BackendCapabilities, BlockBackend, Extent, WriteOptions, ZeroOptions } from './backend.js';
import { NbdError } from './errors.js';

/** Zeroes are written in pieces of this size (WRITE_ZEROES without a payload). */
const ZERO_CHUNK_BYTES = 1024 * 1024;
/** CACHE reads ahead in pieces of this size and drops the bytes (it only warms the page cache). */
const CACHE_CHUNK_BYTES = 1024 * 1024;

export interface FileBackendOptions {
  path: string;
  /** Size of the export; the file is created or grown (sparsely) to it. Default: the file's size. */
  size?: number;
  readOnly?: boolean;
}

/**
 * An export backed by a (sparse) file with pread/pwrite. FLUSH and FUA call
 * fdatasync. Node cannot punch holes nor ask SEEK_DATA/SEEK_HOLE, so TRIM is
 * not advertised, WRITE_ZEROES writes real zeroes (a FAST_ZERO request gets
 * ENOTSUP at once), and block status reports everything as data.
 */
export class FileBackend implements BlockBackend {
  readonly capabilities: BackendCapabilities;
  private readonly zeroes = Buffer.alloc(ZERO_CHUNK_BYTES);

  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readOnly: boolean,
  ) {
    this.capabilities = {
      readOnly,
      flush: true,
      fua: true,
      trim: false,
      zero: true,
      fastZero: true,
      cache: true,
      multiConn: true,
      extents: false,
    };
  }

  static async open(options: FileBackendOptions): Promise<FileBackend> {
    const readOnly = options.readOnly === true;
    let fh: FileHandle;
    try {
      fh = await open(options.path, readOnly ? 'r' : 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || readOnly || options.size === undefined) throw err;
      fh = await open(options.path, 'wx+');
    }
    try {
      const current = (await fh.stat()).size;
      const size = options.size ?? current;
      if (size > current) {
        if (readOnly) throw new Error(`${options.path} is ${current} bytes, smaller than the requested ${size}`);
        await fh.truncate(size);
      }
      return new FileBackend(fh, size, readOnly);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) {
        // The file shrank under us: what is missing reads as zeroes.
        buf.fill(0, done);
        break;
      }
      done += bytesRead;
    }
    return buf;
  }

  async write(offset: number, data: Buffer, options: WriteOptions): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    if (options.fua) await this.fh.datasync();
  }

  async flush(): Promise<void> {
    await this.fh.datasync();
  }

  async trim(_offset: number, _length: number, _options: WriteOptions): Promise<void> {
    // Not advertised (no hole punching from node); a trim is only a hint anyway.
  }

  async zero(offset: number, length: number, options: ZeroOptions): Promise<void> {
    if (options.fast) throw new NbdError('ENOTSUP', 'zeroing a file range is as slow as writing it');
    let done = 0;
    while (done < length) {
      const count = Math.min(ZERO_CHUNK_BYTES, length - done);
      await this.write(offset + done, count === ZERO_CHUNK_BYTES ? this.zeroes : this.zeroes.subarray(0, count), { fua: false });
      done += count;
    }
    if (options.fua) await this.fh.datasync();
  }

  async cache(offset: number, length: number): Promise<void> {
    const buf = Buffer.allocUnsafe(Math.min(CACHE_CHUNK_BYTES, length));
    for (let done = 0; done < length; ) {
      const count = Math.min(buf.length, length - done);
      const { bytesRead } = await this.fh.read(buf, 0, count, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
  }

  async blockStatus(_offset: number, length: number): Promise<Extent[]> {
    return [{ length, hole: false, zero: false }];
  }

  async close(): Promise<void> {
    if (!this.capabilities.readOnly) await this.fh.datasync();
    await this.fh.close();
  }
}
