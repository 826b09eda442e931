/**
 * `pflex certs`: a cluster CA and component certificates, made with the
 * openssl command-line tool (node:crypto makes keys but not X.509
 * certificates). Keys are EC P-256; every component certificate is good for
 * both TLS server and client authentication (an SDS serves and forwards, an
 * SDC serves NBD and calls SDSs), with the DNS names and IPs given as SANs.
 *
 * Layout of DIR (docs/security.md):
 *   ca.crt, ca.key           the cluster CA (key 0600)
 *   <name>.crt, <name>.key   a component's certificate and key (key 0600)
 *   with --gnutls-dir OUT:   OUT/ca-cert.pem, client-cert.pem, client-key.pem,
 *                            the names libnbd (tls-certificates=OUT) and
 *                            qemu (tls-creds-x509 dir=OUT) read
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { PflexError } from '../shared/errors.js';
import { reportError } from './common.js';

export const caDaysDefault = 3650;
export const certDaysDefault = 825;

export interface CaFiles { cert: string; key: string }
export interface IssueOptions { ips?: readonly string[]; dns?: readonly string[]; days?: number }

function openssl(args: string[], what: string): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new PflexError('PFLEX_ERR_UNAVAILABLE', `cannot run openssl (${r.error.message}): install it (Debian: apt-get install openssl)`);
  if (r.status !== 0) throw new PflexError('PFLEX_ERR_INTERNAL', `openssl failed to ${what}: ${r.stderr.trim()}`);
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** The CA files of dir (made first when absent). */
export function ensureCa(dir: string, days = caDaysDefault): CaFiles & { created: boolean } {
  const files = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  if (existsSync(files.cert) && existsSync(files.key)) return { ...files, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  openssl(['req', '-x509', '-new', ...ecKey, '-keyout', files.key, '-out', files.cert, '-days', String(days), '-subj', '/CN=pflex cluster CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], 'make the CA');
  return { ...files, created: true };
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A certificate for one component, signed by the CA of dir: <name>.crt and <name>.key. */
export function issueCert(dir: string, name: string, o: IssueOptions = {}): { cert: string; key: string } {
  if (!NAME.test(name)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `bad certificate name "${name}" (letters, digits, . _ -)`);
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  if (!existsSync(ca.cert) || !existsSync(ca.key)) throw new PflexError('PFLEX_ERR_NOT_FOUND', `no CA in ${dir}: run pflex certs ca --dir ${dir} first`);
  for (const ip of o.ips ?? []) if (isIP(ip) === 0) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `not an IP address: ${ip}`);
  for (const d of o.dns ?? []) if (!/^[A-Za-z0-9*][A-Za-z0-9.-]{0,252}$/.test(d)) throw new PflexError('PFLEX_ERR_BAD_REQUEST', `not a DNS name: ${d}`);
  const sans = [...(o.dns ?? []).map((d) => `DNS:${d}`), ...(o.ips ?? []).map((ip) => `IP:${ip}`)];
  if (sans.length === 0) throw new PflexError('PFLEX_ERR_BAD_REQUEST', 'a certificate needs at least one --ip or --dns (clients check the name they connect to)');
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const tmp = mkdtempSync(join(tmpdir(), 'pflex-certs-'));
  try {
    const csr = join(tmp, 'req.csr');
    const ext = join(tmp, 'ext.cnf');
    writeFileSync(ext, [
      'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=${sans.join(',')}`, '',
    ].join('\n'));
    openssl(['req', '-new', ...ecKey, '-keyout', files.key, '-out', csr, '-subj', `/CN=${name}`], `make the key of ${name}`);
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
      '-days', String(o.days ?? certDaysDefault), '-extfile', ext, '-out', files.cert], `sign the certificate of ${name}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return files;
}

/** The CA and a certificate under the file names GnuTLS clients expect (libnbd, qemu). */
export function gnutlsClientDir(dir: string, name: string, out: string): string {
  mkdirSync(out, { recursive: true, mode: 0o700 });
  copyFileSync(join(dir, 'ca.crt'), join(out, 'ca-cert.pem'));
  copyFileSync(join(dir, `${name}.crt`), join(out, 'client-cert.pem'));
  copyFileSync(join(dir, `${name}.key`), join(out, 'client-key.pem'));
  return out;
}

interface CaArgs { dir: string; days: number }
interface IssueArgs { dir: string; name: string; ip: string[]; dns: string[]; days: number; 'gnutls-dir'?: string }

const caCommand: CommandModule<object, CaArgs> = {
  command: 'ca',
  describe: 'make the cluster CA (DIR/ca.crt, DIR/ca.key) unless it exists',
  builder: (y: Argv<object>) => y
    .option('dir', { type: 'string', demandOption: true, describe: 'certificate directory' })
    .option('days', { type: 'number', default: caDaysDefault }) as Argv<CaArgs>,
  handler: (a) => {
    try {
      const ca = ensureCa(a.dir, a.days);
      process.stdout.write(`${ca.created ? 'made' : 'kept'} ${ca.cert}\n`);
    } catch (err) {
      reportError(err);
    }
  },
};

const issueCommand: CommandModule<object, IssueArgs> = {
  command: 'issue',
  describe: 'make a component certificate (DIR/NAME.crt, DIR/NAME.key) signed by the cluster CA',
  builder: (y: Argv<object>) => y
    .option('dir', { type: 'string', demandOption: true, describe: 'certificate directory (holding the CA)' })
    .option('name', { type: 'string', demandOption: true, describe: 'file name and common name, e.g. sds1' })
    .option('ip', { type: 'string', array: true, default: [], describe: 'IP address SAN (repeatable)' })
    .option('dns', { type: 'string', array: true, default: [], describe: 'DNS name SAN (repeatable)' })
    .option('days', { type: 'number', default: certDaysDefault })
    .option('gnutls-dir', { type: 'string', describe: 'also write ca-cert.pem, client-cert.pem, client-key.pem there (nbdinfo tls-certificates=, qemu tls-creds-x509)' }) as Argv<IssueArgs>,
  handler: (a) => {
    try {
      const f = issueCert(a.dir, a.name, { ips: a.ip, dns: a.dns, days: a.days });
      process.stdout.write(`made ${f.cert}\n`);
      if (a['gnutls-dir']) process.stdout.write(`made ${gnutlsClientDir(a.dir, a.name, a['gnutls-dir'])}/{ca-cert,client-cert,client-key}.pem\n`);
    } catch (err) {
      reportError(err);
    }
  },
};

export const certsCommand: CommandModule<object, object> = {
  command: 'certs',
  describe: 'TLS certificates: a cluster CA and component certificates (openssl)',
  builder: (y: Argv<object>) => y.command(caCommand).command(issueCommand).demandCommand(1, 'name a command: ca, issue'),
  handler: () => undefined,
};
