/**
 * What the NBD server needs from storage. The server validates every request
 * (range, flags, read-only) before calling a backend, so a backend may assume
 * 0 <= offset, offset + length <= size and length > 0.
 */

/** Which operations a backend really implements; the server advertises only these. */
export interface BackendCapabilities {
  /** The backend refuses writes (the export is advertised READ_ONLY). */
  readonly readOnly: boolean;
  /** flush() makes completed writes durable (SEND_FLUSH). */
  readonly flush: boolean;
  /** write/trim/zero honour `fua` (SEND_FUA). */
  readonly fua: boolean;
  /** trim() may discard data (SEND_TRIM). */
  readonly trim: boolean;
  /** zero() writes zeroes without a payload (SEND_WRITE_ZEROES). */
  readonly zero: boolean;
  /** zero() with `fast` either is fast or fails at once with ENOTSUP (SEND_FAST_ZERO). */
  readonly fastZero: boolean;
  /** cache() prefetches (SEND_CACHE). */
  readonly cache: boolean;
  /** All connections see one consistent store; flush on one covers all (CAN_MULTI_CONN). */
  readonly multiConn: boolean;
  /** blockStatus() reports real holes/zeroes; otherwise the server reports everything as data. */
  readonly extents: boolean;
}

export interface WriteOptions {
  /** Durable before the promise resolves. */
  readonly fua: boolean;
}

export interface ZeroOptions extends WriteOptions {
  /** The backend may deallocate (NBD_CMD_FLAG_NO_HOLE not set). */
  readonly mayTrim: boolean;
  /** Fail with ENOTSUP rather than be slower than a write (NBD_CMD_FLAG_FAST_ZERO). */
  readonly fast: boolean;
}

/** One run of bytes with one allocation state (base:allocation). */
export interface Extent {
  readonly length: number;
  /** Not allocated in the backing store. */
  readonly hole: boolean;
  /** Reads as zeroes. */
  readonly zero: boolean;
}

export interface BlockBackend {
  readonly size: number;
  readonly capabilities: BackendCapabilities;
  /** Resolves with exactly `length` bytes; the caller may keep the buffer but must not modify it. */
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer, options: WriteOptions): Promise<void>;
  flush(): Promise<void>;
  trim(offset: number, length: number, options: WriteOptions): Promise<void>;
  zero(offset: number, length: number, options: ZeroOptions): Promise<void>;
  cache(offset: number, length: number): Promise<void>;
  /**
   * Optional zero-copy read: buffers that together hold exactly `length`
   * bytes (views of the backend's memory are fine: the server only queues
   * them on the socket, which happens before any later request runs).
   */
  readv?(offset: number, length: number): Promise<Buffer[]>;
  /** Optional write from several buffers (a payload that arrived in several socket chunks), saving a copy. */
  writev?(offset: number, data: readonly Buffer[], options: WriteOptions): Promise<void>;
  /** Consecutive extents from `offset`, covering at least one byte and at most `length`. */
  blockStatus(offset: number, length: number): Promise<Extent[]>;
  close(): Promise<void>;
}

/** A named export a server can hand to clients. */
export interface NbdExport {
  readonly name: string;
  readonly description?: string;
  /** Serve read-only even when the backend can write. */
  readonly readOnly?: boolean;
  readonly backend: BlockBackend;
}
