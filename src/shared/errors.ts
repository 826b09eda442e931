/**
 * The one table of pflex error codes. Every operating error that reaches a
 * caller (HTTP response, NBD reply, CLI exit) is a PflexError carrying one of
 * these codes; the edges map the code to a status or errno from this table.
 * docs/errors.md documents every code (a test checks it).
 */
import { NBD_ERRNO } from '../nbd/constants.js';

/** NBD errno values: the NBD library's table (doc/proto.md "Error values"), one copy. */
export const NbdErrno = NBD_ERRNO;
export type NbdErrnoValue = (typeof NbdErrno)[keyof typeof NbdErrno];

export interface ErrorSpec {
  readonly message: string;
  readonly httpStatus: number;
  readonly nbdErrno: NbdErrnoValue;
  readonly cliExit: number;
}

export const ERRORS = {
  PFLEX_ERR_BAD_REQUEST: { message: 'the request is malformed', httpStatus: 400, nbdErrno: NbdErrno.EINVAL, cliExit: 2 },
  PFLEX_ERR_UNAUTHENTICATED: { message: 'authentication is required', httpStatus: 401, nbdErrno: NbdErrno.EPERM, cliExit: 3 },
  PFLEX_ERR_FORBIDDEN: { message: 'the caller may not do this', httpStatus: 403, nbdErrno: NbdErrno.EPERM, cliExit: 3 },
  PFLEX_ERR_NOT_FOUND: { message: 'no such object', httpStatus: 404, nbdErrno: NbdErrno.EINVAL, cliExit: 4 },
  PFLEX_ERR_CONFLICT: { message: 'the request conflicts with the current state', httpStatus: 409, nbdErrno: NbdErrno.EINVAL, cliExit: 5 },
  PFLEX_ERR_INTERNAL: { message: 'internal error', httpStatus: 500, nbdErrno: NbdErrno.EIO, cliExit: 1 },
  PFLEX_ERR_UNAVAILABLE: { message: 'a component needed for this request is unavailable', httpStatus: 503, nbdErrno: NbdErrno.EIO, cliExit: 6 },
  PFLEX_ERR_IO: { message: 'input/output error', httpStatus: 500, nbdErrno: NbdErrno.EIO, cliExit: 1 },
  PFLEX_ERR_PAYLOAD_TOO_LARGE: { message: 'the request body is too large', httpStatus: 413, nbdErrno: NbdErrno.EINVAL, cliExit: 2 },
  PFLEX_ERR_UNSUPPORTED_MEDIA_TYPE: { message: 'the request content type is not supported (send application/json)', httpStatus: 415, nbdErrno: NbdErrno.EINVAL, cliExit: 2 },
  PFLEX_ERR_STALE_EPOCH: { message: 'the request was routed with an outdated map epoch', httpStatus: 409, nbdErrno: NbdErrno.EIO, cliExit: 5 },
  PFLEX_ERR_CAPACITY: { message: 'the storage pool does not have the capacity for this request', httpStatus: 409, nbdErrno: NbdErrno.ENOSPC, cliExit: 5 },
  PFLEX_ERR_TOKEN_INVALID: { message: 'the IO token is malformed or forged', httpStatus: 401, nbdErrno: NbdErrno.EPERM, cliExit: 3 },
  PFLEX_ERR_TOKEN_EXPIRED: { message: 'the IO token has expired', httpStatus: 401, nbdErrno: NbdErrno.EPERM, cliExit: 3 },
  PFLEX_ERR_RATE_LIMITED: { message: 'too many requests: retry later', httpStatus: 429, nbdErrno: NbdErrno.EIO, cliExit: 7 },
  PFLEX_ERR_LOGIN_LOCKED: { message: 'too many failed logins for this user name: locked for a while', httpStatus: 429, nbdErrno: NbdErrno.EPERM, cliExit: 3 },
  PFLEX_ERR_TOKEN_SCOPE: { message: 'the IO token does not allow this volume or operation', httpStatus: 403, nbdErrno: NbdErrno.EPERM, cliExit: 3 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Statuses no code of the table carries, and what they mean to a caller (a proxy or a gateway in front of the MDM). */
const HTTP_STATUS_ALIASES: Readonly<Record<number, ErrorCode>> = { 502: 'PFLEX_ERR_UNAVAILABLE', 504: 'PFLEX_ERR_UNAVAILABLE' };

/**
 * The code a bare HTTP status stands for (an answer that carries no pflex
 * code: fastify's own client errors, a proxy's 502): the first code of the
 * table with that status (so 409 is CONFLICT, 500 INTERNAL), else any other
 * 4xx is BAD_REQUEST and anything else INTERNAL. The inverse of ERRORS'
 * httpStatus, derived from it: the table stays the only one.
 */
export function codeOfHttpStatus(status: number): ErrorCode {
  for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, ErrorSpec][]) if (spec.httpStatus === status) return code;
  const alias = HTTP_STATUS_ALIASES[status];
  if (alias) return alias;
  return status >= 400 && status < 500 ? 'PFLEX_ERR_BAD_REQUEST' : 'PFLEX_ERR_INTERNAL';
}

/** An expected operating error: handled at the edges, never a crash. */
export class PflexError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERRORS[code].message);
    this.name = 'PflexError';
    this.code = code;
    this.details = details;
  }

  get spec(): ErrorSpec {
    return ERRORS[this.code];
  }

  /** Read by the NBD server (src/nbd/errors.ts errnoOf), which knows no pflex codes. */
  get nbdErrno(): number {
    return ERRORS[this.code].nbdErrno;
  }
}

export function isPflexError(err: unknown): err is PflexError {
  return err instanceof PflexError;
}

/** For our own bugs: a violated precondition crashes loudly. */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new Error(`pflex assertion: ${message}`);
}
