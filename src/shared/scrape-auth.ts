/**
 * Authentication of Prometheus scrapes: every `/metrics` (MDM, SDS, SDC)
 * wants `Authorization: Bearer <scrape token>`, where the scrape token is
 * hex(deriveKey(clusterKey, 'metrics-scrape')). It is one static secret per
 * cluster, so Prometheus can keep it in a credentials file, and it proves
 * nothing but the right to read metrics (the key derivation keeps it apart
 * from every other use of the cluster key). `pflex metrics token` prints it.
 */
import { timingSafeEqual } from 'node:crypto';
import { deriveKey } from './keys.js';

export function metricsScrapeToken(clusterKey: Buffer): string {
  return deriveKey(clusterKey, 'metrics-scrape').toString('hex');
}

/** A checker for Authorization headers, with the expected header computed once. */
export function scrapeAuthChecker(clusterKey: Buffer): (header: string | undefined) => boolean {
  const want = Buffer.from(`Bearer ${metricsScrapeToken(clusterKey)}`);
  return (header) => {
    if (header === undefined) return false;
    const got = Buffer.from(header);
    return got.length === want.length && timingSafeEqual(got, want);
  };
}
