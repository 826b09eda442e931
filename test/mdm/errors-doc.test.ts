import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { codeOfHttpStatus, ERRORS, NbdErrno, type ErrorCode } from '../../src/shared/errors.js';
import { ROOT } from '../helpers/proc.js';

t.test('every error code is documented in docs/errors.md with its status, errno and exit code', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length > 5 && /^PFLEX_ERR_[A-Z_]+$/.test(cells[1]!)) rows.set(cells[1]!, cells.slice(2));
  }
  const errnoName = (n: number): string => Object.entries(NbdErrno).find(([, v]) => v === n)![0];
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const row = rows.get(code);
    t.ok(row, `${code} has a row`);
    if (!row) continue;
    const spec = ERRORS[code];
    t.same(row.slice(0, 3), [String(spec.httpStatus), errnoName(spec.nbdErrno), String(spec.cliExit)], `${code}: status, errno, exit`);
    t.ok((row[3] ?? '').length > 10, `${code} is explained`);
  }
  for (const code of rows.keys()) t.ok(Object.hasOwn(ERRORS, code), `${code} in the doc exists in the table`);
});

t.test('a bare HTTP status maps back through the same table (MDM error handler and MDM client alike)', async (t) => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const back = codeOfHttpStatus(ERRORS[code].httpStatus);
    t.equal(ERRORS[back].httpStatus, ERRORS[code].httpStatus, `${code}: its status maps to a code of the same status (${back})`);
  }
  t.equal(codeOfHttpStatus(409), 'PFLEX_ERR_CONFLICT', '409: the generic code, not STALE_EPOCH or CAPACITY');
  t.equal(codeOfHttpStatus(500), 'PFLEX_ERR_INTERNAL');
  t.equal(codeOfHttpStatus(413), 'PFLEX_ERR_PAYLOAD_TOO_LARGE');
  t.equal(codeOfHttpStatus(502), 'PFLEX_ERR_UNAVAILABLE', 'a gateway error means unavailable');
  t.equal(codeOfHttpStatus(418), 'PFLEX_ERR_BAD_REQUEST', 'another 4xx is a bad request');
  t.equal(codeOfHttpStatus(507), 'PFLEX_ERR_INTERNAL');
});
