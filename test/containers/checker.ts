/**
 * A verified NBD workload for the multi-host tests: writes blocks with unique,
 * self-describing content (magic, block number, sequence number, CRC32), keeps
 * the sequence number of the last acknowledged write of every block, reads
 * blocks back during the run (a read must return the last acknowledged write,
 * or a newer write still in doubt), measures the longest time without any
 * acknowledgement, and verifies the whole region with a full read-back.
 *
 * The NBD client is its own minimal implementation (fixed newstyle,
 * NBD_OPT_EXPORT_NAME, simple replies, pipelined requests), independent of
 * src/nbd, so that a bug there cannot hide itself.
 */
import { once } from 'node:events';
import net from 'node:net';
import { crc32 } from 'node:zlib';

export const BLOCK_BYTES = 4096;
const HEADER_BYTES = 32;
const BLOCK_MAGIC = 0x70666c78; // "pflx"
const NBD_REQUEST_MAGIC = 0x25609513;
const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
const NBD_CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3 } as const;
const NBD_FLAG_FIXED_NEWSTYLE = 1;
const NBD_FLAG_NO_ZEROES = 2;
const NBD_OPT_EXPORT_NAME = 1;

interface Pending {
  resolve: (r: { error: number; data?: Buffer }) => void;
  reject: (e: Error) => void;
  readBytes: number;
}

/** One NBD connection with pipelined requests (replies matched by handle). */
export class NbdConn {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private readonly pending = new Map<bigint, Pending>();
  private nextHandle = 1n;
  private closedErr: Error | undefined;
  sizeBytes = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      if (this.waiter) this.waiter();
      else this.drainReplies();
    });
    const fail = (err: Error): void => {
      this.closedErr ??= err;
      for (const p of this.pending.values()) p.reject(this.closedErr);
      this.pending.clear();
      this.waiter?.();
    };
    socket.on('error', (e) => fail(e));
    socket.on('close', () => fail(new Error('NBD connection closed by the server')));
  }

  static async open(host: string, port: number, exportName: string): Promise<NbdConn> {
    const socket = net.connect(port, host);
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const c = new NbdConn(socket);
    await c.handshake(exportName);
    c.drainReplies();
    return c;
  }

  private async take(n: number, timeoutMs = 30_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.closedErr) throw this.closedErr;
      if (Date.now() > deadline) throw new Error('NBD handshake timed out');
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 100);
        this.waiter = () => { clearTimeout(timer); r(); };
      });
      this.waiter = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  private async handshake(exportName: string): Promise<void> {
    const hello = await this.take(18);
    if (hello.subarray(0, 8).toString() !== 'NBDMAGIC' || hello.subarray(8, 16).toString() !== 'IHAVEOPT') throw new Error('not an NBD newstyle server');
    const serverFlags = hello.readUInt16BE(16);
    const noZeroes = (serverFlags & NBD_FLAG_NO_ZEROES) !== 0;
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(NBD_FLAG_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_NO_ZEROES : 0));
    const name = Buffer.from(exportName);
    const opt = Buffer.alloc(16);
    opt.write('IHAVEOPT', 0);
    opt.writeUInt32BE(NBD_OPT_EXPORT_NAME, 8);
    opt.writeUInt32BE(name.length, 12);
    this.socket.write(Buffer.concat([clientFlags, opt, name]));
    const reply = await this.take(10 + (noZeroes ? 0 : 124));
    this.sizeBytes = Number(reply.readBigUInt64BE(0));
  }

  private drainReplies(): void {
    while (this.buf.length >= 16) {
      const magic = this.buf.readUInt32BE(0);
      if (magic !== NBD_SIMPLE_REPLY_MAGIC) {
        this.socket.destroy(new Error(`unexpected NBD reply magic 0x${magic.toString(16)}`));
        return;
      }
      const error = this.buf.readUInt32BE(4);
      const handle = this.buf.readBigUInt64BE(8);
      const p = this.pending.get(handle);
      if (!p) {
        this.socket.destroy(new Error(`NBD reply for unknown handle ${handle}`));
        return;
      }
      const dataBytes = error === 0 ? p.readBytes : 0;
      if (this.buf.length < 16 + dataBytes) return;
      const data = dataBytes ? Buffer.from(this.buf.subarray(16, 16 + dataBytes)) : undefined;
      this.buf = this.buf.subarray(16 + dataBytes);
      this.pending.delete(handle);
      p.resolve(data ? { error, data } : { error });
    }
  }

  private request(type: number, offset: number, length: number, payload?: Buffer): Promise<{ error: number; data?: Buffer }> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const handle = this.nextHandle++;
    const head = Buffer.alloc(28);
    head.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    head.writeUInt16BE(0, 4);
    head.writeUInt16BE(type, 6);
    head.writeBigUInt64BE(handle, 8);
    head.writeBigUInt64BE(BigInt(offset), 16);
    head.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { resolve, reject, readBytes: type === NBD_CMD.READ ? length : 0 });
      this.socket.write(payload ? Buffer.concat([head, payload]) : head);
    });
  }

  read(offset: number, length: number): Promise<{ error: number; data?: Buffer }> { return this.request(NBD_CMD.READ, offset, length); }
  write(offset: number, data: Buffer): Promise<{ error: number }> { return this.request(NBD_CMD.WRITE, offset, data.length, data); }
  flush(): Promise<{ error: number }> { return this.request(NBD_CMD.FLUSH, 0, 0); }

  close(): void {
    if (!this.closedErr) {
      const head = Buffer.alloc(28);
      head.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
      head.writeUInt16BE(NBD_CMD.DISC, 6);
      this.socket.end(head);
    }
    this.socket.destroy();
  }
}

/** Content of one block for (block, seq): header with a CRC, then bytes derived from both. */
export function blockContent(block: number, seq: number): Buffer {
  const b = Buffer.alloc(BLOCK_BYTES);
  let x = (Math.imul(block, 0x9e3779b1) ^ Math.imul(seq, 0x85ebca6b)) >>> 0 || 1;
  for (let i = HEADER_BYTES; i < BLOCK_BYTES; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  b.writeUInt32LE(BLOCK_MAGIC, 4);
  b.writeUInt32LE(block, 8);
  b.writeDoubleLE(seq, 12);
  b.writeUInt32LE(crc32(b.subarray(4)), 0);
  return b;
}

export type BlockVerdict = { ok: true; seq: number } | { ok: false; why: string };

/** What a block read back holds: zeros (seq 0), a valid write (its seq), or garbage. */
export function decodeBlock(block: number, b: Buffer): BlockVerdict {
  if (b.every((x) => x === 0)) return { ok: true, seq: 0 };
  if (b.readUInt32LE(4) !== BLOCK_MAGIC) return { ok: false, why: 'no block magic (corrupt)' };
  if (b.readUInt32LE(0) !== crc32(b.subarray(4))) return { ok: false, why: 'checksum mismatch (corrupt or torn)' };
  if (b.readUInt32LE(8) !== block) return { ok: false, why: `holds block ${b.readUInt32LE(8)} (misdirected write)` };
  return { ok: true, seq: b.readDoubleLE(12) };
}

export interface WorkloadOptions {
  host: string;
  port: number;
  exportName: string;
  /** Region used: [0, blocks * 4 KiB). */
  blocks: number;
  /** Requests in flight. */
  queueDepth?: number;
  /** Largest write, in blocks (each request writes 1..this many blocks). */
  writeBlocksMax?: number;
  /** Fraction of requests that are verified reads. */
  readFraction?: number;
  seed?: number;
}

export interface WorkloadFigures {
  writesAcked: number;
  blocksWrittenAcked: number;
  writesFailed: number;
  readsVerified: number;
  readsFailed: number;
  /** Longest time without any acknowledgement while the workload ran. */
  longestStallMs: number;
  /** When that stall began (ms since the workload started). */
  longestStallAtMs: number;
  /** Longest time one request waited for its reply. */
  longestRequestMs: number;
  /** Every problem found (lost, stale or corrupt data; connection loss). */
  problems: string[];
  durationMs: number;
  /** Spells of stallRecordMs or more without any acknowledgement (wall-clock ms, Date.now()); at most timesKeptMax. */
  stalls: Interval[];
  /** Requests that failed, from sending to the error reply (wall-clock ms); at most timesKeptMax. */
  failures: Array<Interval & { op: 'read' | 'write'; first: number; blocks: number; errno: number }>;
}

export interface Interval {
  startMs: number;
  endMs: number;
}

/** Stalls shorter than this are not listed one by one (the longest is always measured). */
export const stallRecordMs = 1_000;
const timesKeptMax = 1_000;

export interface VerifyFigures {
  blocksChecked: number;
  blocksWithData: number;
  /** Lost, stale or corrupt blocks. */
  problems: string[];
  /** Reads that failed (the data may be intact but is not available). */
  unreadable: string[];
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x1234567;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

/**
 * The workload. start() runs it until stop(); the model it keeps says, for
 * every block, the last acknowledged sequence number and the sequence numbers
 * of failed or unanswered writes after it (which may or may not have landed).
 */
export class VerifiedWorkload {
  private conn: NbdConn | undefined;
  private readonly acked: Float64Array;
  /** Writes whose outcome is unknown (errored): block -> seqs newer than acked. */
  private readonly doubt = new Map<number, number[]>();
  private readonly busy: Uint8Array;
  private seq = 0;
  private running = false;
  private workers: Promise<void>[] = [];
  private readonly random: () => number;
  private lastAckMs = 0;
  private startedMs = 0;
  private readonly listeners: Array<(nowMs: number) => void> = [];
  readonly figures: WorkloadFigures = {
    writesAcked: 0, blocksWrittenAcked: 0, writesFailed: 0, readsVerified: 0, readsFailed: 0,
    longestStallMs: 0, longestStallAtMs: 0, longestRequestMs: 0, problems: [], durationMs: 0, stalls: [], failures: [],
  };

  constructor(private readonly o: WorkloadOptions) {
    this.acked = new Float64Array(o.blocks);
    this.busy = new Uint8Array(o.blocks);
    this.random = rng(o.seed ?? 42);
  }

  /** Called at every acknowledgement (scenarios use it to time recovery). */
  onAck(fn: (nowMs: number) => void): void {
    this.listeners.push(fn);
  }

  get acks(): number {
    return this.figures.writesAcked + this.figures.readsVerified;
  }

  async start(): Promise<void> {
    this.conn = await NbdConn.open(this.o.host, this.o.port, this.o.exportName);
    if (this.conn.sizeBytes < this.o.blocks * BLOCK_BYTES) throw new Error(`export is ${this.conn.sizeBytes} bytes, workload needs ${this.o.blocks * BLOCK_BYTES}`);
    this.running = true;
    this.startedMs = this.lastAckMs = Date.now();
    const qd = this.o.queueDepth ?? 8;
    this.workers = Array.from({ length: qd }, () => this.worker());
  }

  /** Stops issuing requests, waits for those in flight, returns the figures. */
  async stop(unansweredMs = 60_000): Promise<WorkloadFigures> {
    this.running = false;
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      Promise.all(this.workers).then(() => true),
      new Promise<false>((r) => { timer = setTimeout(() => r(false), unansweredMs); }),
    ]);
    clearTimeout(timer);
    if (!answered) {
      this.problem(`requests still unanswered ${unansweredMs} ms after the workload stopped`);
      this.conn?.close();
      await Promise.all(this.workers);
    }
    this.noteAck(Date.now(), false);
    this.figures.durationMs = Date.now() - this.startedMs;
    return this.figures;
  }

  private noteAck(now: number, notify = true): void {
    const gap = now - this.lastAckMs;
    if (gap > this.figures.longestStallMs) {
      this.figures.longestStallMs = gap;
      this.figures.longestStallAtMs = this.lastAckMs - this.startedMs;
    }
    if (gap >= stallRecordMs && this.figures.stalls.length < timesKeptMax) this.figures.stalls.push({ startMs: this.lastAckMs, endMs: now });
    this.lastAckMs = now;
    if (notify) for (const fn of this.listeners) fn(now);
  }

  /** A free run of n blocks (none in flight), or undefined after a few tries. */
  private pick(n: number): number | undefined {
    for (let tries = 0; tries < 8; tries++) {
      const first = Math.floor(this.random() * (this.o.blocks - n + 1));
      let free = true;
      for (let b = first; b < first + n; b++) if (this.busy[b]) { free = false; break; }
      if (free) return first;
    }
    return undefined;
  }

  private problem(msg: string): void {
    if (this.figures.problems.length < 50) this.figures.problems.push(msg);
  }

  private async worker(): Promise<void> {
    const conn = this.conn!;
    const maxN = this.o.writeBlocksMax ?? 4;
    while (this.running) {
      const isRead = this.random() < (this.o.readFraction ?? 0.2);
      const n = 1 + Math.floor(this.random() * maxN);
      const first = this.pick(n);
      if (first === undefined) { await new Promise((r) => setImmediate(r)); continue; }
      for (let b = first; b < first + n; b++) this.busy[b] = 1;
      const sentMs = Date.now();
      try {
        const errno = isRead ? await this.verifiedRead(conn, first, n) : await this.write(conn, first, n);
        if (errno !== 0 && this.figures.failures.length < timesKeptMax) {
          this.figures.failures.push({ startMs: sentMs, endMs: Date.now(), op: isRead ? 'read' : 'write', first, blocks: n, errno });
        }
      } catch (err) {
        this.problem(`connection lost: ${(err as Error).message}`);
        this.running = false;
      } finally {
        this.figures.longestRequestMs = Math.max(this.figures.longestRequestMs, Date.now() - sentMs);
        for (let b = first; b < first + n; b++) this.busy[b] = 0;
      }
    }
  }

  /** Returns the NBD error of the reply (0: acknowledged). */
  private async write(conn: NbdConn, first: number, n: number): Promise<number> {
    const seqs: number[] = [];
    const parts: Buffer[] = [];
    for (let b = first; b < first + n; b++) {
      const s = ++this.seq;
      seqs.push(s);
      parts.push(blockContent(b, s));
    }
    const r = await conn.write(first * BLOCK_BYTES, Buffer.concat(parts));
    if (r.error === 0) {
      for (let i = 0; i < n; i++) {
        this.acked[first + i] = seqs[i]!;
        this.doubt.delete(first + i);
      }
      this.figures.writesAcked++;
      this.figures.blocksWrittenAcked += n;
      this.noteAck(Date.now());
    } else {
      this.figures.writesFailed++;
      for (let i = 0; i < n; i++) this.doubt.set(first + i, [...(this.doubt.get(first + i) ?? []), seqs[i]!]);
    }
    return r.error;
  }

  /** Checks what a block holds against the model; returns a problem or undefined. */
  private judge(block: number, data: Buffer): string | undefined {
    const v = decodeBlock(block, data);
    if (!v.ok) return `block ${block}: ${v.why}`;
    const want = this.acked[block]!;
    if (v.seq === want) return undefined;
    if (this.doubt.get(block)?.includes(v.seq)) return undefined;
    if (v.seq === 0) return `block ${block}: reads as zeros, acknowledged write #${want} lost`;
    if (v.seq < want) return `block ${block}: stale data (write #${v.seq}, acknowledged #${want})`;
    return `block ${block}: holds write #${v.seq} that was never sent or acknowledged (acknowledged #${want})`;
  }

  /** Returns the NBD error of the reply (0: read and checked). */
  private async verifiedRead(conn: NbdConn, first: number, n: number): Promise<number> {
    const r = await conn.read(first * BLOCK_BYTES, n * BLOCK_BYTES);
    if (r.error !== 0 || !r.data) {
      this.figures.readsFailed++;
      return r.error || -1;
    }
    for (let i = 0; i < n; i++) {
      const p = this.judge(first + i, r.data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
      if (p) this.problem(`during the run: ${p}`);
    }
    this.figures.readsVerified++;
    this.noteAck(Date.now());
    return 0;
  }

  /**
   * Full read-back of the region on a fresh connection (the workload must be
   * stopped): every block must hold its last acknowledged write (or a write
   * in doubt), never-written blocks zeros.
   */
  async verifyAll(readBlocks = 64): Promise<VerifyFigures> {
    assertStopped(this.running);
    const conn = await NbdConn.open(this.o.host, this.o.port, this.o.exportName);
    const out: VerifyFigures = { blocksChecked: 0, blocksWithData: 0, problems: [], unreadable: [] };
    try {
      for (let first = 0; first < this.o.blocks; first += readBlocks) {
        const n = Math.min(readBlocks, this.o.blocks - first);
        const r = await conn.read(first * BLOCK_BYTES, n * BLOCK_BYTES);
        if (r.error !== 0 || !r.data) {
          out.unreadable.push(`read of blocks ${first}..${first + n - 1} failed with errno ${r.error}`);
          continue;
        }
        for (let i = 0; i < n; i++) {
          const p = this.judge(first + i, r.data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
          if (p && out.problems.length < 50) out.problems.push(p);
          out.blocksChecked++;
          if (this.acked[first + i]! > 0) out.blocksWithData++;
        }
      }
    } finally {
      conn.close();
    }
    return out;
  }

  close(): void {
    this.conn?.close();
  }
}

function assertStopped(running: boolean): void {
  if (running) throw new Error('verifyAll() needs the workload stopped');
}
