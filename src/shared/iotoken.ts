/**
 * IO tokens: the capability an SDC presents with every data request, signed
 * by the MDM and checked by SDSs locally (no MDM round trip).
 *
 * Wire layout (version 1, 34 bytes, big endian):
 *
 *   off len field
 *     0   1 version (1)
 *     1   1 flags: bit 0 = write allowed ('rw'); other bits must be 0
 *     2   4 sdcId (u32)
 *     6   4 volumeId (u32)
 *    10   8 expiresAtMs (u64, ms since the epoch)
 *    18  16 MAC: HMAC-SHA256(deriveKey(clusterKey, 'io-token'), bytes 0..17),
 *            truncated to its first 16 bytes
 *
 * The MAC is truncated to 128 bits (RFC 2104 section 5 allows truncation to
 * half the hash length): a forger gets one online guess per request, so 2^-128
 * per try is far beyond need, and the token stays small in every data frame.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { PflexError, assert } from './errors.js';

export const ioTokenVersion = 1;
export const ioTokenPayloadBytes = 18;
export const ioTokenMacBytes = 16;
export const ioTokenBytes = ioTokenPayloadBytes + ioTokenMacBytes;
/** Default bound of an IoTokenVerifier cache (entries). */
export const ioTokenCacheEntriesMax = 4096;

const FLAG_WRITE = 0x01;
const TWO_POW_32 = 0x1_0000_0000;
const U32_MAX = 0xffff_ffff;

export type IoRights = 'rw' | 'ro';

export interface IoCapability {
  sdcId: number;
  volumeId: number;
  rights: IoRights;
  expiresAtMs: number;
}

/** What a request needs from its token. */
export interface IoNeed {
  volumeId: number;
  write: boolean;
  nowMs: number;
}

function mac(key: Buffer, payload: Buffer): Buffer {
  return createHmac('sha256', key).update(payload).digest().subarray(0, ioTokenMacBytes);
}

/** Signs a capability. `key` is deriveKey(clusterKey, 'io-token'). */
export function issueIoToken(key: Buffer, cap: IoCapability): Buffer {
  assert(Number.isInteger(cap.sdcId) && cap.sdcId >= 0 && cap.sdcId <= U32_MAX, 'sdcId must be a u32');
  assert(Number.isInteger(cap.volumeId) && cap.volumeId >= 0 && cap.volumeId <= U32_MAX, 'volumeId must be a u32');
  assert(Number.isSafeInteger(cap.expiresAtMs) && cap.expiresAtMs >= 0, 'expiresAtMs must be a non-negative integer');
  assert(cap.rights === 'rw' || cap.rights === 'ro', 'rights must be rw or ro');
  const token = Buffer.alloc(ioTokenBytes);
  token[0] = ioTokenVersion;
  token[1] = cap.rights === 'rw' ? FLAG_WRITE : 0;
  token.writeUInt32BE(cap.sdcId, 2);
  token.writeUInt32BE(cap.volumeId, 6);
  token.writeUInt32BE(Math.floor(cap.expiresAtMs / TWO_POW_32), 10);
  token.writeUInt32BE(cap.expiresAtMs % TWO_POW_32, 14);
  mac(key, token.subarray(0, ioTokenPayloadBytes)).copy(token, ioTokenPayloadBytes);
  return token;
}

/** Parses a token WITHOUT checking its MAC (for logs and for the SDC's renewal timer). */
export function decodeIoToken(token: Buffer): IoCapability {
  if (token.length !== ioTokenBytes) {
    throw new PflexError('PFLEX_ERR_TOKEN_INVALID', `IO token must be ${ioTokenBytes} bytes, got ${token.length}`);
  }
  if (token[0] !== ioTokenVersion) {
    throw new PflexError('PFLEX_ERR_TOKEN_INVALID', `IO token version ${token[0]} is not supported`);
  }
  const flags = token[1]!;
  if ((flags & ~FLAG_WRITE) !== 0) throw new PflexError('PFLEX_ERR_TOKEN_INVALID', 'IO token has unknown flags');
  return {
    sdcId: token.readUInt32BE(2),
    volumeId: token.readUInt32BE(6),
    rights: flags & FLAG_WRITE ? 'rw' : 'ro',
    expiresAtMs: token.readUInt32BE(10) * TWO_POW_32 + token.readUInt32BE(14),
  };
}

/** Checks expiry, volume and rights of an already authenticated capability. */
export function checkIoCapability(cap: IoCapability, need: IoNeed): IoCapability {
  if (need.nowMs >= cap.expiresAtMs) throw new PflexError('PFLEX_ERR_TOKEN_EXPIRED');
  if (cap.volumeId !== need.volumeId) {
    throw new PflexError('PFLEX_ERR_TOKEN_SCOPE', `IO token is for volume ${cap.volumeId}, not ${need.volumeId}`);
  }
  if (need.write && cap.rights !== 'rw') throw new PflexError('PFLEX_ERR_TOKEN_SCOPE', 'IO token is read-only');
  return cap;
}

/** Authenticates a token (constant-time MAC compare), then checks it against the request. */
export function verifyIoToken(key: Buffer, token: Buffer, need: IoNeed): IoCapability {
  const cap = decodeIoToken(token);
  const expected = mac(key, token.subarray(0, ioTokenPayloadBytes));
  if (!timingSafeEqual(expected, token.subarray(ioTokenPayloadBytes))) {
    throw new PflexError('PFLEX_ERR_TOKEN_INVALID', 'IO token signature does not verify');
  }
  return checkIoCapability(cap, need);
}

/**
 * Verifies tokens for an SDS, which sees the same few tokens on every data
 * request: authenticated tokens are cached (keyed by their exact bytes, so a
 * hit is byte-identical to a token whose MAC verified), bounded in size with
 * the oldest entry evicted first. Expiry and scope are checked on every call.
 */
export class IoTokenVerifier {
  private readonly cache = new Map<string, IoCapability>();

  constructor(
    private readonly key: Buffer,
    readonly cacheEntriesMax: number = ioTokenCacheEntriesMax,
  ) {
    assert(Number.isInteger(cacheEntriesMax) && cacheEntriesMax >= 1, 'cacheEntriesMax must be >= 1');
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  verify(token: Buffer, need: IoNeed): IoCapability {
    const cacheKey = token.toString('latin1');
    const hit = this.cache.get(cacheKey);
    if (hit) return checkIoCapability(hit, need);
    const cap = decodeIoToken(token);
    const expected = mac(this.key, token.subarray(0, ioTokenPayloadBytes));
    if (!timingSafeEqual(expected, token.subarray(ioTokenPayloadBytes))) {
      throw new PflexError('PFLEX_ERR_TOKEN_INVALID', 'IO token signature does not verify');
    }
    if (this.cache.size >= this.cacheEntriesMax) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(cacheKey, cap);
    return checkIoCapability(cap, need);
  }
}
