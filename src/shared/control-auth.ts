/**
 * Authentication of calls to an SDS's control listener (MDM -> SDS commands,
 * SDS -> SDS chunk copies): the caller proves it holds the cluster key with
 *
 *   authorization: PflexComponent <caller>:<tsMs>:<hex HMAC-SHA256(deriveKey(clusterKey, 'component-auth'), `control|<caller>|<tsMs>`)>
 *
 * where caller is e.g. "mdm" or "sds:<name>". The timestamp must be within
 * controlAuthSkewMs of the SDS clock, so a captured header soon goes stale.
 * (The "control|" prefix keeps these proofs apart from MDM login proofs.)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKey } from './keys.js';

import { componentAuthSkewMs } from './limits.js';

/** The same bound as for component logins at the MDM (src/shared/limits.ts). */
export const controlAuthSkewMs = componentAuthSkewMs;
const SCHEME = 'PflexComponent ';

function proof(clusterKey: Buffer, caller: string, tsMs: number): Buffer {
  return createHmac('sha256', deriveKey(clusterKey, 'component-auth')).update(`control|${caller}|${tsMs}`).digest();
}

/** The authorization header value for a control call. */
export function controlAuthorization(clusterKey: Buffer, caller: string, nowMs = Date.now()): string {
  return `${SCHEME}${caller}:${nowMs}:${proof(clusterKey, caller, nowMs).toString('hex')}`;
}

/** The authenticated caller, or undefined when the header does not verify. */
export function checkControlAuthorization(clusterKey: Buffer, header: string | undefined, nowMs = Date.now()): string | undefined {
  if (!header?.startsWith(SCHEME)) return undefined;
  const m = /^(.{1,128}):(\d{1,16}):([0-9a-f]{64})$/.exec(header.slice(SCHEME.length));
  if (!m) return undefined;
  const [, caller, ts, hex] = m;
  const tsMs = Number(ts);
  if (Math.abs(nowMs - tsMs) > controlAuthSkewMs) return undefined;
  const want = proof(clusterKey, caller!, tsMs);
  const got = Buffer.from(hex!, 'hex');
  return got.length === want.length && timingSafeEqual(got, want) ? caller : undefined;
}
