import { codeOfHttpStatus, ERRORS, PflexError, isPflexError, type ErrorCode } from '../shared/errors.js';

export interface HttpError { status: number; code: ErrorCode; body: { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } }

function statusCodeOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown }).statusCode;
  return typeof s === 'number' ? s : undefined;
}

/**
 * The one place where errors become HTTP answers: PflexErrors keep their
 * code; fastify's own client errors (validation, bad JSON, body too large,
 * wrong content type) get the matching code; anything else is our bug: 500.
 */
export function toHttpError(err: unknown): HttpError {
  let pe: PflexError;
  if (isPflexError(err)) {
    pe = err;
  } else if ((err as { validation?: unknown }).validation) {
    pe = new PflexError('PFLEX_ERR_BAD_REQUEST', (err as Error).message);
  } else if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
    pe = new PflexError('PFLEX_ERR_CONFLICT', 'an object with this name already exists');
  } else {
    const status = statusCodeOf(err);
    if (status !== undefined && status >= 400 && status < 500) {
      pe = new PflexError(codeOfHttpStatus(status), (err as Error).message);
    } else {
      pe = new PflexError('PFLEX_ERR_INTERNAL');
    }
  }
  const body: HttpError['body'] = { error: { code: pe.code, message: pe.message } };
  if (pe.details) body.error.details = pe.details;
  return { status: ERRORS[pe.code].httpStatus, code: pe.code, body };
}
