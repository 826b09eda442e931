import t from 'tap';
import { randomBytes } from 'node:crypto';
import { deriveKey } from '../../src/shared/keys.js';
import {
  IoTokenVerifier,
  decodeIoToken,
  ioTokenBytes,
  issueIoToken,
  verifyIoToken,
  type IoCapability,
} from '../../src/shared/iotoken.js';
import { ERRORS } from '../../src/shared/errors.js';

const clusterKey = randomBytes(32);
const key = deriveKey(clusterKey, 'io-token');
const now = 1_800_000_000_000;
const cap: IoCapability = { sdcId: 7, volumeId: 42, rights: 'rw', expiresAtMs: now + 60_000 };
const readNeed = { volumeId: 42, write: false, nowMs: now };
const writeNeed = { volumeId: 42, write: true, nowMs: now };

t.test('derived keys differ per purpose and per cluster key', async (t) => {
  t.equal(key.length, 32);
  t.notSame(deriveKey(clusterKey, 'jwt'), key);
  t.notSame(deriveKey(clusterKey, 'component-auth'), key);
  t.same(deriveKey(clusterKey, 'io-token'), key, 'deterministic');
  t.notSame(deriveKey(randomBytes(32), 'io-token'), key);
});

t.test('a valid token round-trips and is accepted', async (t) => {
  const token = issueIoToken(key, cap);
  t.equal(token.length, ioTokenBytes);
  t.same(decodeIoToken(token), cap);
  t.same(verifyIoToken(key, token, writeNeed), cap, 'rw token allows writes');
  t.same(verifyIoToken(key, token, readNeed), cap, 'and reads');
  const big = { sdcId: 0xffff_ffff, volumeId: 0, rights: 'ro' as const, expiresAtMs: 2 ** 50 + 3 };
  t.same(decodeIoToken(issueIoToken(key, big)), big, 'u32 ids and >32-bit expiry survive');
});

t.test('forged tokens are rejected: every flipped bit, and another cluster key', async (t) => {
  const token = issueIoToken(key, cap);
  let accepted = 0;
  let otherCodes = 0;
  for (let bit = 0; bit < token.length * 8; bit++) {
    const forged = Buffer.from(token);
    forged[bit >> 3]! ^= 1 << (bit & 7);
    try {
      verifyIoToken(key, forged, { volumeId: 42, write: false, nowMs: now });
      accepted++;
    } catch (err) {
      if ((err as { code?: string }).code !== 'PFLEX_ERR_TOKEN_INVALID') otherCodes++;
    }
  }
  t.equal(accepted, 0, 'no single-bit change of payload or MAC is accepted');
  t.equal(otherCodes, 0, 'all rejected as PFLEX_ERR_TOKEN_INVALID');
  const otherKey = deriveKey(randomBytes(32), 'io-token');
  t.throws(() => verifyIoToken(otherKey, token, readNeed), { code: 'PFLEX_ERR_TOKEN_INVALID' });
});

t.test('malformed tokens are rejected', async (t) => {
  const token = issueIoToken(key, cap);
  t.throws(() => verifyIoToken(key, token.subarray(0, token.length - 1), readNeed), { code: 'PFLEX_ERR_TOKEN_INVALID', message: /34 bytes/ });
  t.throws(() => verifyIoToken(key, Buffer.alloc(0), readNeed), { code: 'PFLEX_ERR_TOKEN_INVALID' });
  t.throws(() => verifyIoToken(key, Buffer.concat([token, Buffer.from([0])]), readNeed), { code: 'PFLEX_ERR_TOKEN_INVALID' });
  const v2 = Buffer.from(token);
  v2[0] = 2;
  t.throws(() => decodeIoToken(v2), { code: 'PFLEX_ERR_TOKEN_INVALID', message: /version/ });
});

t.test('expired, wrong-volume and read-only-for-write tokens are rejected with their own codes', async (t) => {
  const token = issueIoToken(key, cap);
  t.throws(() => verifyIoToken(key, token, { ...readNeed, nowMs: cap.expiresAtMs }), { code: 'PFLEX_ERR_TOKEN_EXPIRED' });
  t.throws(() => verifyIoToken(key, token, { ...readNeed, volumeId: 43 }), { code: 'PFLEX_ERR_TOKEN_SCOPE', message: /volume 42, not 43/ });
  const ro = issueIoToken(key, { ...cap, rights: 'ro' });
  t.same(verifyIoToken(key, ro, readNeed).rights, 'ro', 'read-only token allows reads');
  t.throws(() => verifyIoToken(key, ro, writeNeed), { code: 'PFLEX_ERR_TOKEN_SCOPE', message: /read-only/ });
  t.equal(ERRORS.PFLEX_ERR_TOKEN_SCOPE.httpStatus, 403);
  t.equal(ERRORS.PFLEX_ERR_TOKEN_INVALID.httpStatus, 401);
});

t.test('the verifier caches authenticated tokens, bounded, and still checks expiry and scope', async (t) => {
  const verifier = new IoTokenVerifier(key, 8);
  const token = issueIoToken(key, cap);
  t.same(verifier.verify(token, writeNeed), cap);
  t.equal(verifier.cacheSize, 1);
  t.same(verifier.verify(token, readNeed), cap, 'cache hit');
  t.equal(verifier.cacheSize, 1);
  t.throws(() => verifier.verify(token, { ...readNeed, nowMs: cap.expiresAtMs + 1 }), { code: 'PFLEX_ERR_TOKEN_EXPIRED' }, 'expiry checked on a hit');
  t.throws(() => verifier.verify(token, { ...readNeed, volumeId: 1 }), { code: 'PFLEX_ERR_TOKEN_SCOPE' }, 'scope checked on a hit');

  const forged = Buffer.from(token);
  forged[ioTokenBytes - 1]! ^= 0x80;
  t.throws(() => verifier.verify(forged, readNeed), { code: 'PFLEX_ERR_TOKEN_INVALID' }, 'a forged sibling of a cached token');
  t.equal(verifier.cacheSize, 1, 'forged tokens are not cached');

  for (let sdc = 100; sdc < 200; sdc++) verifier.verify(issueIoToken(key, { ...cap, sdcId: sdc }), readNeed);
  t.equal(verifier.cacheSize, 8, 'cache stays at its bound');
  t.same(verifier.verify(token, readNeed), cap, 'an evicted token verifies again');
});
