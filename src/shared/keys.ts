import { createHmac } from 'node:crypto';

/** What a derived key is for; each purpose gets an independent key. */
export type KeyPurpose = 'io-token' | 'component-auth' | 'jwt' | 'metrics-scrape';

/**
 * Derives a per-purpose key from the cluster key, so that e.g. an IO token
 * MAC can never double as a component-auth proof: HMAC-SHA256(clusterKey,
 * 'pflex/' + purpose).
 */
export function deriveKey(clusterKey: Buffer, purpose: KeyPurpose): Buffer {
  return createHmac('sha256', clusterKey).update(`pflex/${purpose}`).digest();
}
