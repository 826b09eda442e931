import {
  INFO,
  NBDMAGIC_HI,
  NBDMAGIC_LO,
  IHAVEOPT_HI,
  IHAVEOPT_LO,
  OPT_REPLY_MAGIC_HI,
  OPT_REPLY_MAGIC_LO,
  REPLY_FLAG_DONE,
  REPLY_TYPE,
  SIMPLE_REPLY_MAGIC,
  STATE_HOLE,
  STATE_ZERO,
  STRUCTURED_REPLY_MAGIC,
} from './constants.js';
import type { Extent } from './backend.js';

/** Encoders and decoders for every NBD message the server sends or receives. */

export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.allocUnsafe(18);
  b.writeUInt32BE(NBDMAGIC_HI, 0);
  b.writeUInt32BE(NBDMAGIC_LO, 4);
  b.writeUInt32BE(IHAVEOPT_HI, 8);
  b.writeUInt32BE(IHAVEOPT_LO, 12);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export interface OptionHeader {
  readonly magicOk: boolean;
  readonly option: number;
  readonly length: number;
}

export function decodeOptionHeader(b: Buffer): OptionHeader {
  return {
    magicOk: b.readUInt32BE(0) === IHAVEOPT_HI && b.readUInt32BE(4) === IHAVEOPT_LO,
    option: b.readUInt32BE(8),
    length: b.readUInt32BE(12),
  };
}

export function encodeOptionReply(option: number, type: number, data: Buffer = EMPTY): Buffer {
  const b = Buffer.allocUnsafe(20 + data.length);
  b.writeUInt32BE(OPT_REPLY_MAGIC_HI, 0);
  b.writeUInt32BE(OPT_REPLY_MAGIC_LO, 4);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, 20);
  return b;
}

/** NBD_OPT_EXPORT_NAME's reply: size, flags and (unless NO_ZEROES) 124 zero bytes. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  writeU64(b, 0, size);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

export function encodeServerReplyData(name: string, description?: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description ?? '', 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function encodeInfoExport(size: number, transmissionFlags: number): Buffer {
  const b = Buffer.allocUnsafe(12);
  b.writeUInt16BE(INFO.EXPORT, 0);
  writeU64(b, 2, size);
  b.writeUInt16BE(transmissionFlags, 10);
  return b;
}

export function encodeInfoString(type: number, text: string): Buffer {
  const t = Buffer.from(text, 'utf8');
  const b = Buffer.allocUnsafe(2 + t.length);
  b.writeUInt16BE(type, 0);
  t.copy(b, 2);
  return b;
}

export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.allocUnsafe(14);
  b.writeUInt16BE(INFO.BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeMetaContext(id: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length);
  b.writeUInt32BE(id, 0);
  n.copy(b, 4);
  return b;
}

/** A transmission request header (28 bytes). The handle is kept as two halves so no slice of the socket chunk is retained. */
export interface Request {
  readonly magic: number;
  readonly flags: number;
  readonly type: number;
  readonly handleHi: number;
  readonly handleLo: number;
  /** As a double; exact up to 2^53, which is beyond any export size. */
  readonly offset: number;
  readonly length: number;
}

export function decodeRequest(b: Buffer): Request {
  return {
    magic: b.readUInt32BE(0),
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    handleHi: b.readUInt32BE(8),
    handleLo: b.readUInt32BE(12),
    offset: b.readUInt32BE(16) * 0x100000000 + b.readUInt32BE(20),
    length: b.readUInt32BE(24),
  };
}

export function encodeSimpleReply(error: number, req: Request): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeUInt32BE(req.handleHi, 8);
  b.writeUInt32BE(req.handleLo, 12);
  return b;
}

function chunkHeader(b: Buffer, at: number, flags: number, type: number, req: Request, length: number): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, at);
  b.writeUInt16BE(flags, at + 4);
  b.writeUInt16BE(type, at + 6);
  b.writeUInt32BE(req.handleHi, at + 8);
  b.writeUInt32BE(req.handleLo, at + 12);
  b.writeUInt32BE(length, at + 16);
}

/** Header (and offset) of an OFFSET_DATA chunk; the data follows as a separate buffer. */
export function encodeOffsetDataHeader(req: Request, offset: number, dataLength: number, done: boolean): Buffer {
  const b = Buffer.allocUnsafe(28);
  chunkHeader(b, 0, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_DATA, req, 8 + dataLength);
  writeU64(b, 20, offset);
  return b;
}

export function encodeOffsetHole(req: Request, offset: number, length: number, done: boolean): Buffer {
  const b = Buffer.allocUnsafe(32);
  chunkHeader(b, 0, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_HOLE, req, 12);
  writeU64(b, 20, offset);
  b.writeUInt32BE(length, 28);
  return b;
}

export function encodeNoneChunk(req: Request): Buffer {
  const b = Buffer.allocUnsafe(20);
  chunkHeader(b, 0, REPLY_FLAG_DONE, REPLY_TYPE.NONE, req, 0);
  return b;
}

/** An ERROR chunk, or ERROR_OFFSET when an offset is given. Always the final chunk. */
export function encodeErrorChunk(req: Request, error: number, message: string, offset?: number): Buffer {
  const msg = Buffer.from(message.slice(0, 1024), 'utf8');
  const tail = offset === undefined ? 0 : 8;
  const b = Buffer.allocUnsafe(20 + 6 + msg.length + tail);
  chunkHeader(b, 0, REPLY_FLAG_DONE, offset === undefined ? REPLY_TYPE.ERROR : REPLY_TYPE.ERROR_OFFSET, req, 6 + msg.length + tail);
  b.writeUInt32BE(error, 20);
  b.writeUInt16BE(msg.length, 24);
  msg.copy(b, 26);
  if (offset !== undefined) writeU64(b, 26 + msg.length, offset);
  return b;
}

export function extentFlags(e: Extent): number {
  return (e.hole ? STATE_HOLE : 0) | (e.zero ? STATE_ZERO : 0);
}

export function encodeBlockStatus(req: Request, contextId: number, extents: readonly Extent[]): Buffer {
  const b = Buffer.allocUnsafe(20 + 4 + 8 * extents.length);
  chunkHeader(b, 0, REPLY_FLAG_DONE, REPLY_TYPE.BLOCK_STATUS, req, 4 + 8 * extents.length);
  b.writeUInt32BE(contextId, 20);
  let at = 24;
  for (const e of extents) {
    b.writeUInt32BE(e.length, at);
    b.writeUInt32BE(extentFlags(e), at + 4);
    at += 8;
  }
  return b;
}

export function writeU64(b: Buffer, at: number, value: number): void {
  b.writeUInt32BE(Math.floor(value / 0x100000000), at);
  b.writeUInt32BE(value >>> 0, at + 4);
}

export function readU64(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 0x100000000 + b.readUInt32BE(at + 4);
}

const EMPTY = Buffer.alloc(0);
