import { CMD, CMD_FLAG, NBD_ERRNO, TFLAG } from './constants.js';
import type { Request } from './codec.js';
import type { Session } from './handshake.js';
import type { NbdLimits } from './limits.js';

/**
 * The one validation layer: every client mistake in a well-framed request
 * becomes an NBD errno here, so that backends only ever see valid requests.
 */
export interface Rejection {
  readonly errno: number;
  readonly message: string;
}

/** Flags each command may carry (before checking what was negotiated). */
const ALLOWED_FLAGS: Record<number, number> = {
  [CMD.READ]: CMD_FLAG.FUA | CMD_FLAG.DF,
  [CMD.WRITE]: CMD_FLAG.FUA,
  [CMD.FLUSH]: CMD_FLAG.FUA,
  [CMD.TRIM]: CMD_FLAG.FUA,
  [CMD.CACHE]: CMD_FLAG.FUA,
  [CMD.WRITE_ZEROES]: CMD_FLAG.FUA | CMD_FLAG.NO_HOLE | CMD_FLAG.FAST_ZERO,
  [CMD.BLOCK_STATUS]: CMD_FLAG.FUA | CMD_FLAG.REQ_ONE,
};

const NAMES: Record<number, string> = {
  [CMD.READ]: 'READ',
  [CMD.WRITE]: 'WRITE',
  [CMD.DISC]: 'DISC',
  [CMD.FLUSH]: 'FLUSH',
  [CMD.TRIM]: 'TRIM',
  [CMD.CACHE]: 'CACHE',
  [CMD.WRITE_ZEROES]: 'WRITE_ZEROES',
  [CMD.BLOCK_STATUS]: 'BLOCK_STATUS',
};

export function commandName(type: number): string {
  return NAMES[type] ?? `command ${type}`;
}

function reject(errno: number, message: string): Rejection {
  return { errno, message };
}

export function validateRequest(req: Request, s: Session, limits: NbdLimits): Rejection | undefined {
  const { type, flags, offset, length } = req;
  const allowed = ALLOWED_FLAGS[type];
  if (allowed === undefined) return reject(NBD_ERRNO.EINVAL, `unknown command ${type}`);
  const name = NAMES[type]!;
  const tf = s.transmissionFlags;

  if (s.readOnly && (type === CMD.WRITE || type === CMD.TRIM || type === CMD.WRITE_ZEROES)) {
    return reject(NBD_ERRNO.EPERM, `${name} on a read-only export`);
  }
  if ((flags & ~allowed) !== 0) return reject(NBD_ERRNO.EINVAL, `flags 0x${flags.toString(16)} not valid for ${name}`);
  // FUA is valid on any command once negotiated (clients are known to send it on reads).
  if (flags & CMD_FLAG.FUA && !(tf & TFLAG.SEND_FUA)) return reject(NBD_ERRNO.EINVAL, 'FUA was not negotiated');
  if (flags & CMD_FLAG.DF && !(tf & TFLAG.SEND_DF)) return reject(NBD_ERRNO.EINVAL, 'DF needs structured replies');
  if (flags & CMD_FLAG.FAST_ZERO && !(tf & TFLAG.SEND_FAST_ZERO)) return reject(NBD_ERRNO.EINVAL, 'FAST_ZERO was not negotiated');

  switch (type) {
    case CMD.WRITE:
    case CMD.TRIM:
    case CMD.WRITE_ZEROES:
      if (type === CMD.TRIM && !(tf & TFLAG.SEND_TRIM)) return reject(NBD_ERRNO.EINVAL, 'TRIM is not supported by this export');
      if (type === CMD.WRITE_ZEROES && !(tf & TFLAG.SEND_WRITE_ZEROES)) return reject(NBD_ERRNO.EINVAL, 'WRITE_ZEROES is not supported by this export');
      break;
    case CMD.FLUSH:
      if (!(tf & TFLAG.SEND_FLUSH)) return reject(NBD_ERRNO.EINVAL, 'FLUSH is not supported by this export');
      if (offset !== 0 || length !== 0) return reject(NBD_ERRNO.EINVAL, 'FLUSH needs offset and length 0');
      return undefined;
    case CMD.CACHE:
      if (!(tf & TFLAG.SEND_CACHE)) return reject(NBD_ERRNO.EINVAL, 'CACHE is not supported by this export');
      break;
    case CMD.BLOCK_STATUS:
      if (!s.structured || !s.baseAllocation) return reject(NBD_ERRNO.EINVAL, 'BLOCK_STATUS needs a negotiated meta context');
      if (length === 0) return reject(NBD_ERRNO.EINVAL, 'BLOCK_STATUS of length 0');
      break;
  }

  if ((type === CMD.READ || type === CMD.WRITE) && length > limits.requestBytesMax) {
    return reject(NBD_ERRNO.EOVERFLOW, `${name} of ${length} bytes exceeds the maximum of ${limits.requestBytesMax}`);
  }
  if (offset > s.size || offset + length > s.size) {
    const errno = type === CMD.WRITE || type === CMD.WRITE_ZEROES ? NBD_ERRNO.ENOSPC : NBD_ERRNO.EINVAL;
    return reject(errno, `${name} at ${offset}+${length} is beyond the export size ${s.size}`);
  }
  return undefined;
}
