/**
 * A cluster CA and component certificates in a temp dir (pflex certs, i.e.
 * openssl), for tests and benchmarks that run components with TLS.
 */
import { join } from 'node:path';
import { ensureCa, issueCert } from '../../src/cli/certs.js';
import { readPem, type MutualTls } from '../../src/shared/tls.js';
import { tempDir, type Teardown } from './proc.js';

export interface CertDir {
  dir: string;
  caFile: string;
  /** The --tls-cert/--tls-key/--tls-ca flags of a component. */
  args(name: string): string[];
  /** A component's material, for an in-process client (DataClient). */
  material(name: string): MutualTls;
}

/** The CA and a certificate (SANs 127.0.0.1, localhost) for each name. */
export function makeCerts(t: Teardown, names: readonly string[], prefix = 'pflex-certs-'): CertDir {
  const dir = tempDir(t, prefix);
  const ca = ensureCa(dir);
  for (const name of names) issueCert(dir, name, { ips: ['127.0.0.1'], dns: ['localhost'] });
  return {
    dir, caFile: ca.cert,
    args: (name) => ['--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`), '--tls-ca', ca.cert],
    material: (name) => ({ cert: readPem(join(dir, `${name}.crt`)), key: readPem(join(dir, `${name}.key`)), ca: readPem(ca.cert) }),
  };
}
