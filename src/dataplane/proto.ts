/**
 * The pflex data-plane protocol (SDC -> SDS, SDS -> SDS): binary,
 * length-prefixed, pipelined frames. This module is the only place that knows
 * the byte layout; docs/sds.md has the table. No JSON, no base64: payloads
 * travel as raw bytes and are never copied by the codec.
 *
 * Frame (all integers little-endian):
 *
 *   off size field
 *    0   4   magic 0x31444650 ("PFD1")
 *    4   4   frame length in bytes, header included
 *    8   1   version (1)
 *    9   1   message type (reply = request type | 0x80)
 *   10   2   flags
 *   12   4   request id (echoed in the reply)
 *   16   4   PG id
 *   20   4   PG epoch (the requester's; a STALE_EPOCH reply carries the SDS's)
 *   24   4   volume id (the IO token's scope)
 *   28   4   volume-tree id (chunk key)
 *   32   4   chunk index (chunk key)
 *   36   2   layer id (chunk key)
 *   38   2   status (replies; 0 in requests)
 *   40   4   offset within the chunk
 *   44   4   length (bytes of the chunk range)
 *   48   4   CRC32 of the payload (0 when there is none)
 *   52   2   IO token length T
 *   54   1   trace context length R (0 = none)
 *   55   1   reserved (0)
 *   56   T   IO token
 *  56+T  R   trace context (binary W3C traceparent: traceBytes in tracing.ts, encodeTraceparent here)
 *  ...       payload (WRITE data, READ reply data, UTF-8 error text)
 */
import { crc32 } from '../shared/crc32.js';
import { framePayloadBytesMax, frameTokenBytesMax, frameTraceBytesMax, chunkBytesMax } from './limits.js';

import { assert } from '../shared/errors.js';

export const FRAME_MAGIC = 0x31444650;
export const FRAME_VERSION = 1;
export const HEADER_BYTES = 56;
export const FRAME_BYTES_MAX = HEADER_BYTES + frameTokenBytesMax + frameTraceBytesMax + framePayloadBytesMax;

export const MsgType = {
  WRITE: 1,
  READ: 2,
  FLUSH: 3,
  TRIM: 4,
  ZERO: 5,
  PING: 6,
} as const;
export type MsgTypeValue = (typeof MsgType)[keyof typeof MsgType];
export const REPLY_BIT = 0x80;

export const Flag = {
  /** Durable on every replica before the reply. */
  FUA: 1 << 0,
  /** Sent by a PG primary to a secondary: apply locally, do not forward. */
  FORWARDED: 1 << 1,
  /** A READ the client sends to an acting secondary: served there if its map is confirmed current (docs/sds.md "Replica reads"), else NOT_PRIMARY. */
  REPLICA_READ: 1 << 2,
} as const;
const KNOWN_FLAGS = Flag.FUA | Flag.FORWARDED | Flag.REPLICA_READ;

/** Reply status codes; each failure has its own code so a client can react to it. */
export const Status = {
  OK: 0,
  IO_ERROR: 1,
  STALE_EPOCH: 2,
  NOT_PRIMARY: 3,
  BAD_TOKEN: 4,
  TOKEN_EXPIRED: 5,
  TOKEN_SCOPE: 6,
  BAD_REQUEST: 7,
  NO_CHUNK: 8,
  CHECKSUM_MISMATCH: 9,
  NOT_MEMBER: 10,
  UNKNOWN_PG: 11,
  NO_SPACE: 12,
  BUSY: 13,
  SHUTTING_DOWN: 14,
  REPLICATION_FAILED: 15,
  EPOCH_AHEAD: 16,
  /** The frame's layer is not the volume's layer any more (a snapshot or revert moved it): refresh the volume, retry. */
  LAYER_CHANGED: 17,
} as const;
export type StatusValue = (typeof Status)[keyof typeof Status];
const STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));
export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `STATUS_${status}`;
}

/** The fixed header of a frame, as numbers. */
export interface FrameHeader {
  type: number;
  flags: number;
  requestId: number;
  pgId: number;
  epoch: number;
  volumeId: number;
  treeId: number;
  chunkIndex: number;
  layerId: number;
  status: number;
  offset: number;
  length: number;
}

/** A decoded frame; token, trace and payload are views into the received bytes. */
export interface Frame extends FrameHeader {
  crc: number;
  token: Buffer;
  trace: Buffer;
  payload: Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Bytes of a frame with these variable parts. */
export function frameSize(tokenBytes: number, traceBytes: number, payloadBytes: number): number {
  return HEADER_BYTES + tokenBytes + traceBytes + payloadBytes;
}

/**
 * Encodes the header, token and trace context into one small buffer. The
 * payload is NOT copied: the caller writes it right after (corked socket).
 * payloadCrc, when the caller already knows it (a verified frame being
 * forwarded), saves a pass over the payload.
 */
export function encodeHead(h: FrameHeader, token: Buffer, trace: Buffer, payload: Payload, payloadCrc?: number): Buffer {
  assert(token.length <= frameTokenBytesMax && trace.length <= frameTraceBytesMax, 'token or trace too long');
  const bytes = payloadBytes(payload);
  assert(bytes <= framePayloadBytesMax, 'payload too large for a frame');
  const head = Buffer.allocUnsafe(HEADER_BYTES + token.length + trace.length);
  head.writeUInt32LE(FRAME_MAGIC, 0);
  head.writeUInt32LE(head.length + bytes, 4);
  head[8] = FRAME_VERSION;
  head[9] = h.type;
  head.writeUInt16LE(h.flags, 10);
  head.writeUInt32LE(h.requestId >>> 0, 12);
  head.writeUInt32LE(h.pgId >>> 0, 16);
  head.writeUInt32LE(h.epoch >>> 0, 20);
  head.writeUInt32LE(h.volumeId >>> 0, 24);
  head.writeUInt32LE(h.treeId >>> 0, 28);
  head.writeUInt32LE(h.chunkIndex >>> 0, 32);
  head.writeUInt16LE(h.layerId, 36);
  head.writeUInt16LE(h.status, 38);
  head.writeUInt32LE(h.offset >>> 0, 40);
  head.writeUInt32LE(h.length >>> 0, 44);
  head.writeUInt32LE(bytes === 0 ? 0 : payloadCrc ?? payloadCrc32(payload), 48);
  head.writeUInt16LE(token.length, 52);
  head[54] = trace.length;
  head[55] = 0;
  token.copy(head, HEADER_BYTES);
  trace.copy(head, HEADER_BYTES + token.length);
  return head;
}

/**
 * A frame's payload: one buffer, or the parts it arrived in (an NBD write
 * read off the socket in pieces), sent one after the other without joining
 * them into a copy.
 */
export type Payload = Buffer | readonly Buffer[];

export function payloadBytes(p: Payload): number {
  if (Buffer.isBuffer(p)) return p.length;
  let n = 0;
  for (const b of p) n += b.length;
  return n;
}

/** CRC32 of the payload's bytes in order (the same value as over their concatenation). */
export function payloadCrc32(p: Payload): number {
  if (Buffer.isBuffer(p)) return crc32(p);
  let c = 0;
  for (const b of p) c = crc32(b, c);
  return c;
}

/** Bytes [start, start + length) of a payload, as views (no copy). */
export function slicePayload(p: Payload, start: number, length: number): Payload {
  if (Buffer.isBuffer(p)) return p.subarray(start, start + length);
  const out: Buffer[] = [];
  let at = 0;
  const end = start + length;
  for (const b of p) {
    const bEnd = at + b.length;
    if (bEnd > start && at < end) out.push(b.subarray(Math.max(start - at, 0), Math.min(end, bEnd) - at));
    if (bEnd >= end) break;
    at = bEnd;
  }
  return out.length === 1 ? out[0]! : out;
}

/** Header + payload as one buffer (tests and small frames; the hot path uses encodeHead). */
export function encodeFrame(h: FrameHeader, token: Buffer = EMPTY, trace: Buffer = EMPTY, payload: Buffer = EMPTY): Buffer {
  const head = encodeHead(h, token, trace, payload);
  return payload.length === 0 ? head : Buffer.concat([head, payload]);
}

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/**
 * Decodes one complete frame (exactly frameLength bytes). Throws FrameError
 * on anything malformed; the caller closes that connection.
 */
export function decodeFrame(buf: Buffer): Frame {
  if (buf.length < HEADER_BYTES) throw new FrameError('frame shorter than its header');
  if (buf.readUInt32LE(0) !== FRAME_MAGIC) throw new FrameError('bad magic');
  if (buf.readUInt32LE(4) !== buf.length) throw new FrameError('frame length mismatch');
  if (buf[8] !== FRAME_VERSION) throw new FrameError(`unsupported version ${buf[8]}`);
  const tokenLen = buf.readUInt16LE(52);
  const traceLen = buf[54]!;
  if (tokenLen > frameTokenBytesMax) throw new FrameError('token too long');
  const payloadStart = HEADER_BYTES + tokenLen + traceLen;
  if (payloadStart > buf.length) throw new FrameError('token/trace overrun the frame');
  const f: Frame = {
    type: buf[9]!,
    flags: buf.readUInt16LE(10),
    requestId: buf.readUInt32LE(12),
    pgId: buf.readUInt32LE(16),
    epoch: buf.readUInt32LE(20),
    volumeId: buf.readUInt32LE(24),
    treeId: buf.readUInt32LE(28),
    chunkIndex: buf.readUInt32LE(32),
    layerId: buf.readUInt16LE(36),
    status: buf.readUInt16LE(38),
    offset: buf.readUInt32LE(40),
    length: buf.readUInt32LE(44),
    crc: buf.readUInt32LE(48),
    token: buf.subarray(HEADER_BYTES, HEADER_BYTES + tokenLen),
    trace: buf.subarray(HEADER_BYTES + tokenLen, payloadStart),
    payload: buf.subarray(payloadStart),
  };
  validateFrame(f);
  return f;
}

/**
 * True when the payload matches its CRC. Checked by the receiver apart from
 * decodeFrame: a damaged payload under an intact header is answered with
 * CHECKSUM_MISMATCH (the sender may resend) instead of closing the connection.
 */
export function payloadIntact(f: Frame): boolean {
  return f.payload.length > 0 ? crc32(f.payload) === f.crc : f.crc === 0;
}

/** Per-type structural rules; semantic checks (token, epoch) belong to the server. */
function validateFrame(f: Frame): void {
  if ((f.flags & ~KNOWN_FLAGS) !== 0) throw new FrameError(`unknown flags 0x${f.flags.toString(16)}`);
  if (f.payload.length > framePayloadBytesMax) throw new FrameError('payload too large');
  const reply = (f.type & REPLY_BIT) !== 0;
  const base = f.type & ~REPLY_BIT;
  if (base < MsgType.WRITE || base > MsgType.PING) throw new FrameError(`unknown message type ${f.type}`);
  if (!reply && f.status !== 0) throw new FrameError('request with a status');
  if (reply) return;
  if (base === MsgType.WRITE || base === MsgType.READ || base === MsgType.TRIM || base === MsgType.ZERO) {
    if (f.length === 0) throw new FrameError('zero-length range');
    if (f.offset + f.length > chunkBytesMax) throw new FrameError('range beyond the largest chunk');
  }
  if (base === MsgType.WRITE) {
    if (f.payload.length !== f.length) throw new FrameError('write payload length differs from its range length');
  } else if (f.payload.length !== 0) {
    throw new FrameError('payload on a request that takes none');
  }
  if (base === MsgType.READ && f.length > framePayloadBytesMax) throw new FrameError('read larger than a frame');
}

/**
 * Splits a TCP byte stream into frames. Partial reads are kept as a list of
 * chunks (no re-concatenation per read); a frame contained in one chunk is a
 * zero-copy view. Throws FrameError on a bad or oversized frame prefix.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Feeds bytes; calls onFrame for each complete frame, in order. */
  push(data: Buffer, onFrame: (frame: Frame) => void): void {
    if (this.buffered === 0 && this.chunks.length === 0) {
      // Fast path: no leftover, walk frames in place.
      let pos = 0;
      while (data.length - pos >= 8) {
        const len = frameLengthAt(data, pos);
        if (data.length - pos < len) break;
        onFrame(decodeFrame(data.subarray(pos, pos + len)));
        pos += len;
      }
      if (pos < data.length) {
        this.chunks.push(data.subarray(pos));
        this.buffered = data.length - pos;
      }
      return;
    }
    this.chunks.push(data);
    this.buffered += data.length;
    for (;;) {
      if (this.buffered < 8) return;
      const prefix = this.chunks[0]!.length >= 8 ? this.chunks[0]! : this.take(8, false);
      const len = frameLengthAt(prefix, 0);
      if (this.buffered < len) return;
      onFrame(decodeFrame(this.take(len, true)));
      if (this.buffered === 0) return;
      if (this.chunks.length === 1) {
        // Back to a single leftover chunk: let the fast path walk it.
        const rest = this.chunks[0]!;
        this.chunks = [];
        this.buffered = 0;
        this.push(rest, onFrame);
        return;
      }
    }
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The first n buffered bytes, copied only when they span chunks; consumed if consume. */
  private take(n: number, consume: boolean): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (consume) {
        if (first.length === n) this.chunks.shift();
        else this.chunks[0] = first.subarray(n);
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let copied = 0;
      let i = 0;
      while (copied < n) {
        const c = this.chunks[i]!;
        const k = Math.min(c.length, n - copied);
        c.copy(out, copied, 0, k);
        copied += k;
        if (k === c.length) i++;
        else if (consume) this.chunks[i] = c.subarray(k);
      }
      if (consume) this.chunks.splice(0, i);
    }
    if (consume) this.buffered -= n;
    return out;
  }
}

function frameLengthAt(buf: Buffer, pos: number): number {
  if (buf.readUInt32LE(pos) !== FRAME_MAGIC) throw new FrameError('bad magic');
  const len = buf.readUInt32LE(pos + 4);
  if (len < HEADER_BYTES) throw new FrameError('frame length below the header size');
  if (len > FRAME_BYTES_MAX) throw new FrameError('frame too large');
  return len;
}

// ---- per-message helpers: what each type carries -------------------------

/** The fields a request about one chunk range carries. */
export interface ChunkRequest {
  requestId: number;
  pgId: number;
  epoch: number;
  volumeId: number;
  treeId: number;
  chunkIndex: number;
  layerId: number;
  offset: number;
  length: number;
  flags: number;
}

export function requestHeader(type: MsgTypeValue, r: ChunkRequest): FrameHeader {
  return { ...r, type, status: 0 };
}

/** A reply header mirroring the request it answers. */
export function replyHeader(req: FrameHeader, status: number, length = 0, epoch = req.epoch): FrameHeader {
  return {
    type: (req.type & ~REPLY_BIT) | REPLY_BIT,
    flags: 0,
    requestId: req.requestId,
    pgId: req.pgId,
    epoch,
    volumeId: req.volumeId,
    treeId: req.treeId,
    chunkIndex: req.chunkIndex,
    layerId: req.layerId,
    status,
    offset: req.offset,
    length,
  };
}

/** W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>" as 26 bytes; empty when absent or malformed. */
export function encodeTraceparent(traceparent: string | undefined): Buffer {
  if (!traceparent) return EMPTY;
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(traceparent);
  if (!m) return EMPTY;
  return Buffer.from(m[1]! + m[2]! + m[3]! + m[4]!, 'hex');
}

export function decodeTraceparent(trace: Buffer): string | undefined {
  if (trace.length !== 26) return undefined;
  const hex = trace.toString('hex');
  return `${hex.slice(0, 2)}-${hex.slice(2, 34)}-${hex.slice(34, 50)}-${hex.slice(50, 52)}`;
}
