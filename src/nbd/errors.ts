import { NBD_ERRNO, type NbdErrnoName } from './constants.js';

/** An error a backend (or the validation layer) raises to give the client a specific NBD errno. */
export class NbdError extends Error {
  readonly errno: number;
  constructor(errnoName: NbdErrnoName, message: string) {
    super(message);
    this.name = 'NbdError';
    this.errno = NBD_ERRNO[errnoName];
  }
}

/** A client broke the protocol badly enough that its connection is closed. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** The peer went away (or we are shutting down) while we waited for bytes. */
export class ConnectionClosedError extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ConnectionClosedError';
  }
}

/** The TLS handshake after NBD_OPT_STARTTLS failed (no or a refused client certificate, a client distrusting us, garbage). */
export class TlsHandshakeError extends ConnectionClosedError {
  constructor(message: string) {
    super(message);
    this.name = 'TlsHandshakeError';
  }
}

const NODE_CODE_ERRNO: Record<string, number> = {
  ENOSPC: NBD_ERRNO.ENOSPC,
  EDQUOT: NBD_ERRNO.ENOSPC,
  EFBIG: NBD_ERRNO.ENOSPC,
  EROFS: NBD_ERRNO.EPERM,
  EACCES: NBD_ERRNO.EPERM,
  EPERM: NBD_ERRNO.EPERM,
  ENOMEM: NBD_ERRNO.ENOMEM,
  EINVAL: NBD_ERRNO.EINVAL,
  ENOTSUP: NBD_ERRNO.ENOTSUP,
  EOPNOTSUPP: NBD_ERRNO.ENOTSUP,
};

/**
 * An error of the layer above (pflex's PflexError) that names its NBD errno
 * itself: the NBD server stays independent of that layer's error table.
 */
export interface HasNbdErrno { readonly nbdErrno: number }

function nbdErrnoOf(err: unknown): number | undefined {
  const v = (err as Partial<HasNbdErrno> | null)?.nbdErrno;
  return typeof v === 'number' ? v : undefined;
}

/** The NBD errno for an error thrown by a backend (EIO when nothing more specific is known). */
export function errnoOf(err: unknown): number {
  if (err instanceof NbdError) return err.errno;
  const named = nbdErrnoOf(err);
  if (named !== undefined) return named;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in NODE_CODE_ERRNO) return NODE_CODE_ERRNO[code]!;
  return NBD_ERRNO.EIO;
}
