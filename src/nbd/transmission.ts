import type { Logger } from 'pino';
import type { Extent } from './backend.js';
import { CMD, CMD_FLAG, META_BASE_ALLOCATION_ID, NBD_ERRNO, REQUEST_HEADER_BYTES, REQUEST_MAGIC } from './constants.js';
import {
  decodeRequest,
  encodeBlockStatus,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHole,
  encodeSimpleReply,
  extentFlags,
  type Request,
} from './codec.js';
import { ConnectionClosedError, NbdError, ProtocolError, errnoOf } from './errors.js';
import type { Session } from './handshake.js';
import type { NbdLimits } from './limits.js';
import { commandName, validateRequest } from './validate.js';
import type { Wire } from './wire.js';

/**
 * The transmission phase of one connection: reads requests in order,
 * executes many at once, replies as each completes (out of order, matched
 * by handle). In-flight requests and bytes are bounded: when a bound is
 * reached the loop stops reading, so the socket pauses and TCP pushes back.
 */
export class Transmission {
  private inflight = 0;
  private inflightBytes = 0;
  private wake: (() => void) | undefined;
  private stopping = false;

  constructor(
    private readonly wire: Wire,
    private readonly s: Session,
    private readonly limits: NbdLimits,
    private readonly log: Logger,
  ) {}

  /** Serves until DISC, the peer closing, shutdown, or a protocol error (thrown). */
  async run(): Promise<void> {
    try {
      await this.loop();
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    } finally {
      await this.drain();
    }
  }

  /** Stop taking requests; in-flight ones still complete and reply. */
  stop(): void {
    this.stopping = true;
    this.wire.stopReading();
    this.notify();
  }

  get inflightRequests(): number {
    return this.inflight;
  }

  private async loop(): Promise<void> {
    const { wire, limits } = this;
    let burst = 0;
    while (!this.stopping) {
      // Even refused requests produce replies: never read on while replies pile up unsent.
      if (wire.writableBytes > limits.writeBufferBytesMax && !wire.closed) {
        await this.waitForRoom();
        continue;
      }
      // A long run of already-buffered requests must not starve the other connections.
      if (++burst >= limits.requestsPerTurnMax) {
        burst = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const header = wire.tryRead(REQUEST_HEADER_BYTES) ?? (await wire.readExact(REQUEST_HEADER_BYTES));
      const req = decodeRequest(header);
      if (req.magic !== REQUEST_MAGIC) throw new ProtocolError(`bad request magic 0x${req.magic.toString(16)}`);

      let payload: Buffer[] | undefined;
      if (req.type === CMD.WRITE) {
        if (req.length > limits.requestBytesMax) {
          // Too big to take, small enough to skip: drop the payload and refuse the request.
          if (req.length > limits.writeDiscardBytesMax) throw new ProtocolError(`WRITE payload of ${req.length} bytes`);
          await wire.skip(req.length);
          this.replyError(req, NBD_ERRNO.EOVERFLOW, `WRITE of ${req.length} bytes exceeds the maximum of ${limits.requestBytesMax}`);
          continue;
        }
        payload = wire.tryReadChunks(req.length) ?? (await wire.readChunks(req.length));
      } else if (req.type === CMD.DISC) {
        return;
      }

      const rejection = validateRequest(req, this.s, limits);
      if (rejection) {
        this.log.debug({ cmd: commandName(req.type), offset: req.offset, length: req.length, errno: rejection.errno }, rejection.message);
        this.replyError(req, rejection.errno, rejection.message);
        continue;
      }

      const cost = req.type === CMD.READ || req.type === CMD.WRITE ? req.length : 0;
      while (!this.hasRoom(cost)) await this.waitForRoom();
      this.inflight++;
      this.inflightBytes += cost;
      void this.execute(req, payload)
        .catch((err: unknown) => this.log.error({ err }, 'nbd request handler failed'))
        .finally(() => {
          this.inflight--;
          this.inflightBytes -= cost;
          this.notify();
        });
    }
  }

  private hasRoom(cost: number): boolean {
    // A client that does not read its replies must not make us queue them without bound.
    if (this.wire.writableBytes > this.limits.writeBufferBytesMax && !this.wire.closed) return false;
    if (this.inflight === 0) return true;
    return this.inflight < this.limits.inflightRequestsMax && this.inflightBytes + cost <= this.limits.inflightBytesMax;
  }

  private waitForRoom(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      // Room can also come from the socket draining its queued replies.
      if (this.wire.writableBytes > this.limits.writeBufferBytesMax) void this.wire.waitDrain().then(() => this.notify());
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async drain(): Promise<void> {
    while (this.inflight > 0) await this.waitForRoom();
  }

  /** Runs one valid request and sends its reply; never throws. */
  private async execute(req: Request, payload: Buffer[] | undefined): Promise<void> {
    const { backend } = this.s;
    const fua = (req.flags & CMD_FLAG.FUA) !== 0;
    try {
      switch (req.type) {
        case CMD.READ:
          await this.read(req);
          return;
        case CMD.WRITE:
          if (req.length > 0) await this.write(req.offset, payload!, fua);
          break;
        case CMD.FLUSH:
          await backend.flush();
          break;
        case CMD.TRIM:
          if (req.length > 0) await backend.trim(req.offset, req.length, { fua });
          break;
        case CMD.WRITE_ZEROES:
          if (req.length > 0) {
            await backend.zero(req.offset, req.length, {
              fua,
              mayTrim: (req.flags & CMD_FLAG.NO_HOLE) === 0,
              fast: (req.flags & CMD_FLAG.FAST_ZERO) !== 0,
            });
          }
          break;
        case CMD.CACHE:
          if (req.length > 0) await backend.cache(req.offset, req.length);
          break;
        case CMD.BLOCK_STATUS:
          await this.blockStatus(req);
          return;
      }
      this.wire.write(encodeSimpleReply(0, req));
    } catch (err) {
      const withOffset = req.type === CMD.READ || req.type === CMD.WRITE || req.type === CMD.TRIM;
      this.backendFailed(req, err, withOffset ? req.offset : undefined);
    }
  }

  private write(offset: number, payload: Buffer[], fua: boolean): Promise<void> {
    const { backend } = this.s;
    if (payload.length === 1) return backend.write(offset, payload[0]!, { fua });
    if (backend.writev) return backend.writev(offset, payload, { fua });
    return backend.write(offset, Buffer.concat(payload), { fua });
  }

  /** The bytes of a range as one or more buffers (zero-copy when the backend can). */
  private async readParts(offset: number, length: number): Promise<Buffer[]> {
    const { backend } = this.s;
    if (backend.readv) return backend.readv(offset, length);
    return [await backend.read(offset, length)];
  }

  private async read(req: Request): Promise<void> {
    const { backend, structured } = this.s;
    if (!structured) {
      if (req.length === 0) this.wire.write(encodeSimpleReply(0, req));
      else this.wire.write(encodeSimpleReply(0, req), ...(await this.readParts(req.offset, req.length)));
      return;
    }
    if (req.length === 0) {
      this.wire.write(encodeNoneChunk(req));
      return;
    }
    const df = (req.flags & CMD_FLAG.DF) !== 0;
    const extents = !df && backend.capabilities.extents ? await this.extents(req.offset, req.length, Infinity) : undefined;
    if (!extents || (extents.length === 1 && !extents[0]!.zero)) {
      const parts = await this.readParts(req.offset, req.length);
      this.wire.write(encodeOffsetDataHeader(req, req.offset, req.length, true), ...parts);
      return;
    }
    // Sparse read: zero runs become OFFSET_HOLE chunks, the rest OFFSET_DATA.
    const out: Buffer[] = [];
    let at = req.offset;
    const end = req.offset + req.length;
    for (let i = 0; i < extents.length && at < end; i++) {
      const e = extents[i]!;
      const len = Math.min(e.length, end - at);
      const last = at + len === end;
      if (e.zero) {
        out.push(encodeOffsetHole(req, at, len, last));
      } else {
        let parts: Buffer[];
        try {
          parts = await this.readParts(at, len);
        } catch (err) {
          this.backendFailed(req, err, at);
          return;
        }
        out.push(encodeOffsetDataHeader(req, at, len, last), ...parts);
      }
      at += len;
    }
    if (at < end) {
      // Extents stopped short: read the rest as data.
      out.push(encodeOffsetDataHeader(req, at, end - at, true), ...(await this.readParts(at, end - at)));
    }
    this.wire.write(...out);
  }

  private async blockStatus(req: Request): Promise<void> {
    const one = (req.flags & CMD_FLAG.REQ_ONE) !== 0;
    const extents = this.s.backend.capabilities.extents
      ? await this.extents(req.offset, req.length, one ? 1 : this.limits.blockStatusExtentsMax)
      : [{ length: req.length, hole: false, zero: false }];
    this.wire.write(encodeBlockStatus(req, META_BASE_ALLOCATION_ID, extents));
  }

  /** Backend extents clipped to the request, merged when equal, at most `max` of them. */
  private async extents(offset: number, length: number, max: number): Promise<Extent[]> {
    const raw = await this.s.backend.blockStatus(offset, length);
    const out: Extent[] = [];
    let left = length;
    for (const e of raw) {
      if (left === 0) break;
      const len = Math.min(e.length, left);
      if (len <= 0) continue;
      const prev = out[out.length - 1];
      if (prev && extentFlags(prev) === extentFlags(e)) {
        out[out.length - 1] = { length: prev.length + len, hole: prev.hole, zero: prev.zero };
      } else {
        if (out.length === max) break;
        out.push({ length: len, hole: e.hole, zero: e.zero });
      }
      left -= len;
    }
    if (out.length === 0) out.push({ length, hole: false, zero: false });
    return out;
  }

  private backendFailed(req: Request, err: unknown, offset: number | undefined): void {
    const errno = errnoOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (!(err instanceof NbdError)) this.log.warn({ err, cmd: commandName(req.type), offset: req.offset, length: req.length }, 'backend request failed');
    this.replyError(req, errno, message, offset);
  }

  private replyError(req: Request, errno: number, message: string, offset?: number): void {
    if (this.s.structured) this.wire.write(encodeErrorChunk(req, errno, message, offset));
    else this.wire.write(encodeSimpleReply(errno, req));
  }
}
