/**
 * The TLS options every server command shares (docs/security.md):
 * --tls-cert/--tls-key (serve TLS; env PFLEX_<C>_TLS_CERT/_KEY) and --tls-ca
 * (the cluster CA its peers' certificates are checked against; env
 * PFLEX_<C>_TLS_CA, else PFLEX_CA).
 */
import type { Argv } from 'yargs';
import type { TlsFiles } from '../shared/tls.js';

export interface TlsArgs { 'tls-cert'?: string; 'tls-key'?: string; 'tls-ca'?: string }

export function withTlsOptions<T>(y: Argv<T>, component: 'MDM' | 'SDS' | 'SDC' | 'MGMT'): Argv<T & TlsArgs> {
  const env = (name: string): string | undefined => process.env[`PFLEX_${component}_TLS_${name}`] || undefined;
  return y
    .option('tls-cert', { type: 'string', default: env('CERT'), describe: `PEM certificate (chain): serve TLS 1.3 (PFLEX_${component}_TLS_CERT)` })
    .option('tls-key', { type: 'string', default: env('KEY'), describe: `PEM private key of --tls-cert (PFLEX_${component}_TLS_KEY)` })
    .option('tls-ca', { type: 'string', default: env('CA') ?? (process.env.PFLEX_CA || undefined), describe: `PEM cluster CA that peers' certificates are checked against (PFLEX_${component}_TLS_CA, PFLEX_CA)` });
}

export function tlsFiles(a: TlsArgs, fallback: TlsFiles = {}): TlsFiles {
  return { cert: a['tls-cert'] ?? fallback.cert, key: a['tls-key'] ?? fallback.key, ca: a['tls-ca'] ?? fallback.ca };
}
