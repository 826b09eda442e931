/**
 * The one way tests and benchmarks start a real MDM process: `pflex mdm init`
 * in a temp dir, `pflex mdm start`, wait for its "mdm listening" line, log in
 * as admin. Stopped (and its dir removed) at teardown.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readClusterKey } from '../../src/shared/component-auth.js';
import { MdmClient } from '../../src/shared/mdm-client.js';
import { readPem } from '../../src/shared/tls.js';
import type { CertDir } from './certs.js';
import { PFLEX_BIN, spawnPflex, tempDir, type PflexProcess, type Teardown } from './proc.js';

export const ADMIN_PASSWORD = 'pflex-test-password';
/** Starting an MDM under a loaded machine (the suite runs files in parallel) can take long. */
const LISTENING_TIMEOUT_MS = 120_000;

export interface Mdm {
  url: string;
  /** With TLS: the certificates the cluster's components use. */
  tls?: CertDir;
  dataDir: string;
  keyFile: string;
  clusterKey: Buffer;
  /** Logged in as admin. */
  admin: MdmClient;
  proc: PflexProcess;
}

export interface StartMdmOptions {
  /** MDM config file contents (pflex mdm start --config): timings of the failure detector and the rebuild loop. */
  config?: Record<string, number>;
  /** 0 (default): any free port. */
  port?: number;
  /** Restart this MDM on its data dir (and config file) instead of creating a cluster. */
  reuse?: Mdm;
  /** Temp dir prefix. */
  prefix?: string;
  /** Serve HTTPS with the certificate "mdm" of these (test/helpers/certs.ts). */
  tls?: CertDir;
}

export async function startMdm(t: Teardown, opts: StartMdmOptions = {}): Promise<Mdm> {
  const base = opts.reuse ? join(opts.reuse.dataDir, '..') : tempDir(t, opts.prefix ?? 'pflex-mdm-');
  const dataDir = join(base, 'mdm');
  const configFile = join(base, 'mdm.json');
  if (!opts.reuse) {
    execFileSync(process.execPath, [PFLEX_BIN, 'mdm', 'init', '--data-dir', dataDir, '--admin-password', ADMIN_PASSWORD], { stdio: 'pipe' });
    writeFileSync(configFile, JSON.stringify(opts.config ?? {}));
  }
  const tls = opts.tls ?? opts.reuse?.tls;
  const proc = spawnPflex(t, ['mdm', 'start', '--data-dir', dataDir, '--port', String(opts.port ?? 0), '--config', configFile, ...(tls ? tls.args('mdm') : [])]);
  const line = await proc.waitForLog((l) => l.msg === 'mdm listening', LISTENING_TIMEOUT_MS);
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${String(line.port)}`;
  const admin = new MdmClient({ url, ...(tls ? { ca: readPem(tls.caFile) } : {}) });
  await admin.login('admin', ADMIN_PASSWORD);
  const keyFile = join(dataDir, 'cluster.key');
  return { url, dataDir, keyFile, clusterKey: readClusterKey(keyFile), admin, proc, ...(tls ? { tls } : {}) };
}
