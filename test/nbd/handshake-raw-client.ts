/**
 * A deliberately small NBD client over raw node sockets, written from the
 * spec independently of src/nbd, for tests that need byte-level control
 * (malformed frames, oversized requests, option errors).
 */
import net from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { MemoryBackend, NbdServer, type BlockBackend, type NbdExport, type NbdLimits } from '../../src/nbd/index.js';

export const NBDMAGIC = Buffer.from('NBDMAGIC');
export const IHAVEOPT = Buffer.from('IHAVEOPT');
export const OPT_REPLY_MAGIC = Buffer.from('0003e889045565a9', 'hex');
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_MAGIC = 0x67446698;
export const STRUCTURED_MAGIC = 0x668e33ef;

export const OPT = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8, LIST_META_CONTEXT: 9, SET_META_CONTEXT: 10 } as const;
export const REP = { ACK: 1, SERVER: 2, INFO: 3, META_CONTEXT: 4, ERR_UNSUP: 0x80000001, ERR_POLICY: 0x80000002, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 } as const;
export const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;
export const CMD_FLAG = { FUA: 1, NO_HOLE: 2, DF: 4, REQ_ONE: 8, FAST_ZERO: 16 } as const;
export const ERRNO = { EPERM: 1, EIO: 5, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75, ENOTSUP: 95 } as const;

/** A socket with exact-length reads and a way to tell that the peer closed. */
export class RawSocket {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiting: (() => void) | undefined;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.have += d.length;
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawSocket> {
    const socket = net.connect(port, host);
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new RawSocket(socket);
  }

  write(b: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(b);
  }

  /** Exactly n bytes, or undefined when the peer closes first (or timeoutMs passes). */
  async read(n: number, timeoutMs = 30000): Promise<Buffer | undefined> {
    if (n === 0) return Buffer.alloc(0);
    const deadline = Date.now() + timeoutMs;
    while (this.have < n) {
      if (this.closed) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out reading ${n} bytes (have ${this.have})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          this.waiting = undefined;
          resolve();
        };
      });
    }
    let first = this.chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    this.chunks[0] = first.subarray(n);
    this.have -= n;
    return first.subarray(0, n);
  }

  async mustRead(n: number): Promise<Buffer> {
    const b = await this.read(n);
    if (!b) throw new Error(`connection closed while reading ${n} bytes`);
    return b;
  }

  /** Resolves true when the server closes the connection within timeoutMs. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.closed) return true;
    const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
    return Promise.race([once(this.socket, 'close').then(() => true), timer]);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function option(opt: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(16);
  IHAVEOPT.copy(h, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

export function goData(name: string, infos: number[] = []): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i));
  return b;
}

export function metaData(name: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  parts.push(u32(Buffer.byteLength(name)), Buffer.from(name), u32(queries.length));
  for (const q of queries) parts.push(u32(Buffer.byteLength(q)), Buffer.from(q));
  return Buffer.concat(parts);
}

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export async function readOptionReply(s: RawSocket): Promise<OptionReply> {
  const h = await s.mustRead(20);
  if (!h.subarray(0, 8).equals(OPT_REPLY_MAGIC)) throw new Error(`bad option reply magic ${h.subarray(0, 8).toString('hex')}`);
  const len = h.readUInt32BE(16);
  return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len ? await s.mustRead(len) : Buffer.alloc(0) };
}

/** Greeting + client flags; returns the server's handshake flags. */
export async function greet(s: RawSocket, clientFlags = 3): Promise<number> {
  const g = await s.mustRead(18);
  if (!g.subarray(0, 8).equals(NBDMAGIC) || !g.subarray(8, 16).equals(IHAVEOPT)) throw new Error('bad greeting');
  const f = Buffer.alloc(4);
  f.writeUInt32BE(clientFlags);
  s.write(f);
  return g.readUInt16BE(16);
}

export function request(type: number, flags: number, handle: bigint, offset: bigint | number, length: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(handle, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

export interface Reply {
  handle: bigint;
  error: number;
  /** Reassembled read data (structured: holes filled with zeroes). */
  data?: Buffer;
  /** Structured chunk types seen, in order. */
  chunkTypes: number[];
  /** BLOCK_STATUS descriptors [length, flags]. */
  extents?: Array<[number, number]>;
}

export interface ClientOptions {
  name?: string;
  structured?: boolean;
  baseAllocation?: boolean;
}

/** A client in transmission phase with many requests in flight; replies matched by handle. */
export class RawNbdClient {
  size = 0;
  flags = 0;
  private nextHandle = 1n;
  private pending = new Map<bigint, { type: number; offset: number; length: number; resolve: (r: Reply) => void; reject: (e: Error) => void; reply: Reply }>();
  private readerError: Error | undefined;

  private constructor(readonly s: RawSocket, readonly structured: boolean) {}

  static async connect(port: number, opts: ClientOptions = {}): Promise<RawNbdClient> {
    const s = await RawSocket.connect(port);
    await greet(s);
    const structured = opts.structured ?? true;
    if (structured) {
      s.write(option(OPT.STRUCTURED_REPLY));
      const r = await readOptionReply(s);
      if (r.type !== REP.ACK) throw new Error(`structured reply refused: ${r.type}`);
      if (opts.baseAllocation) {
        s.write(option(OPT.SET_META_CONTEXT, metaData(opts.name ?? 'disk', ['base:allocation'])));
        for (;;) {
          const m = await readOptionReply(s);
          if (m.type === REP.ACK) break;
          if (m.type !== REP.META_CONTEXT) throw new Error(`meta context: ${m.type}`);
        }
      }
    }
    s.write(option(OPT.GO, goData(opts.name ?? 'disk')));
    const c = new RawNbdClient(s, structured);
    for (;;) {
      const r = await readOptionReply(s);
      if (r.type === REP.ACK) break;
      if (r.type === REP.INFO && r.data.readUInt16BE(0) === 0) {
        c.size = Number(r.data.readBigUInt64BE(2));
        c.flags = r.data.readUInt16BE(10);
      } else if (r.type !== REP.INFO) {
        throw new Error(`GO failed: reply type 0x${r.type.toString(16)} ${r.data.toString()}`);
      }
    }
    void c.readLoop();
    return c;
  }

  /** Sends one request; resolves with its (possibly multi-chunk) reply. */
  send(type: number, offset: number, length: number, opts: { flags?: number; payload?: Buffer } = {}): Promise<Reply> {
    const handle = this.nextHandle++;
    const p = new Promise<Reply>((resolve, reject) => {
      this.pending.set(handle, { type, offset, length, resolve, reject, reply: { handle, error: 0, chunkTypes: [] } });
    });
    this.s.write(request(type, opts.flags ?? 0, handle, offset, length));
    if (opts.payload) this.s.write(opts.payload);
    if (this.readerError) this.failAll(this.readerError);
    return p;
  }

  read(offset: number, length: number, flags = 0): Promise<Reply> {
    return this.send(CMD.READ, offset, length, { flags });
  }

  write(offset: number, data: Buffer, flags = 0): Promise<Reply> {
    return this.send(CMD.WRITE, offset, data.length, { flags, payload: data });
  }

  async disconnect(): Promise<void> {
    this.s.write(request(CMD.DISC, 0, 0n, 0, 0));
    await this.s.waitClosed();
    this.s.destroy();
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private async readLoop(): Promise<void> {
    try {
      for (;;) {
        const head = await this.s.read(4, 3_600_000);
        if (!head) throw new Error('server closed the connection');
        const magic = head.readUInt32BE(0);
        if (magic === SIMPLE_MAGIC) {
          const rest = await this.s.mustRead(12);
          const handle = rest.readBigUInt64BE(4);
          const p = this.take(handle);
          p.reply.error = rest.readUInt32BE(0);
          if (p.type === CMD.READ && p.reply.error === 0 && !this.structured) p.reply.data = await this.s.mustRead(p.length);
          this.pending.delete(handle);
          p.resolve(p.reply);
        } else if (magic === STRUCTURED_MAGIC) {
          const rest = await this.s.mustRead(16);
          const flags = rest.readUInt16BE(0);
          const type = rest.readUInt16BE(2);
          const handle = rest.readBigUInt64BE(4);
          const len = rest.readUInt32BE(12);
          const payload = len ? await this.s.mustRead(len) : Buffer.alloc(0);
          const p = this.take(handle);
          p.reply.chunkTypes.push(type);
          if (type === 1 || type === 2) {
            p.reply.data ??= Buffer.alloc(p.length, 0xee); // 0xee marks bytes no chunk covered
            const off = Number(payload.readBigUInt64BE(0)) - p.offset;
            if (type === 1) payload.copy(p.reply.data, off, 8);
            else p.reply.data.fill(0, off, off + payload.readUInt32BE(8));
          } else if (type === 5) {
            p.reply.extents = [];
            for (let at = 4; at < payload.length; at += 8) p.reply.extents.push([payload.readUInt32BE(at), payload.readUInt32BE(at + 4)]);
          } else if (type & 0x8000) {
            p.reply.error = payload.readUInt32BE(0);
          }
          if (flags & 1) {
            this.pending.delete(handle);
            p.resolve(p.reply);
          }
        } else {
          throw new Error(`bad reply magic 0x${magic.toString(16)}`);
        }
      }
    } catch (err) {
      this.readerError = err as Error;
      this.failAll(err as Error);
    }
  }

  private take(handle: bigint) {
    const p = this.pending.get(handle);
    if (!p) throw new Error(`reply for unknown handle ${handle}`);
    return p;
  }
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface InProcessServer {
  server: NbdServer;
  port: number;
  backend: BlockBackend;
}

/** An NbdServer in this process (silent logs) serving `disk` (default export) and optionally `ro` read-only. */
export async function startInProcess(
  t: Teardown,
  opts: { size?: number; backend?: BlockBackend; limits?: Partial<NbdLimits>; readOnlyExport?: boolean } = {},
): Promise<InProcessServer> {
  const backend = opts.backend ?? new MemoryBackend(opts.size ?? 64 * 1024 * 1024);
  const exports = new Map<string, NbdExport>([['disk', { name: 'disk', description: 'test disk', backend }]]);
  if (opts.readOnlyExport) exports.set('ro', { name: 'ro', readOnly: true, backend });
  const server = new NbdServer({
    lookup: (name) => exports.get(name),
    list: () => [...exports.values()],
    defaultExport: 'disk',
    logger: pino({ level: 'silent' }),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { server, port, backend };
}
