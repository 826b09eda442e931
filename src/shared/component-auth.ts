import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PflexError } from './errors.js';
import { deriveKey } from './keys.js';

/**
 * How SDS and SDC prove to the MDM that they were given the cluster key
 * (POST /auth/component): proof = hex(HMAC-SHA256(deriveKey(clusterKey,
 * 'component-auth'), `${kind}|${name}|${tsMs}`)). The MDM accepts a proof
 * whose timestamp is within its skew window and answers with a bearer token.
 */
export type ComponentKind = 'sds' | 'sdc';

export const clusterKeyBytes = 32;

export function componentProof(clusterKey: Buffer, kind: ComponentKind, name: string, tsMs: number): string {
  return createHmac('sha256', deriveKey(clusterKey, 'component-auth')).update(`${kind}|${name}|${tsMs}`).digest('hex');
}

export function checkComponentProof(clusterKey: Buffer, kind: ComponentKind, name: string, tsMs: number, proof: string): boolean {
  const want = Buffer.from(componentProof(clusterKey, kind, name, tsMs), 'hex');
  const got = Buffer.from(proof, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A new random cluster key. */
export function generateClusterKey(): Buffer {
  return randomBytes(clusterKeyBytes);
}

/** The cluster key file holds the key as hex text (one line). */
export function encodeClusterKey(key: Buffer): string {
  return `${key.toString('hex')}\n`;
}

export function parseClusterKey(text: string): Buffer {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== clusterKeyBytes * 2) {
    throw new PflexError('PFLEX_ERR_BAD_REQUEST', `a cluster key is ${clusterKeyBytes * 2} hex digits`);
  }
  return Buffer.from(hex, 'hex');
}

export function readClusterKey(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PflexError('PFLEX_ERR_NOT_FOUND', `cannot read cluster key ${path}: ${(err as Error).message}`);
  }
  return parseClusterKey(text);
}
