/**
 * `pflex up`: the embedded default. Starts a whole cluster on this machine
 * as child processes — MDM, three SDS (separate storage roots), one SDC,
 * MGMT (the web dashboard) —
 * with every file under one data directory (default ./data):
 *
 *   data/mdm/            mdm.db, cluster.key (pflex mdm init on first run)
 *   data/admin-password  the first admin's password (0600), made on first run
 *   data/sds1..3/        SDS storage roots
 *   data/logs/*.log      each child's JSON log
 *   data/certs/          with --tls: the cluster CA and a certificate per
 *                        component (made on the first --tls run; one
 *                        missing, e.g. mgmt after an upgrade, is made), and
 *                        nbd-client/ for NBD clients (GnuTLS file names)
 *
 * On first run it creates protection domain pd1 and pool pool1 (two copies);
 * with --demo a volume "demo" mapped to the SDC. It prints how to attach,
 * and stops every child on Ctrl-C (MGMT and SDC first, MDM last). A second run reuses
 * the data.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { MdmClient, type Volume } from '../shared/mdm-client.js';
import { readPem } from '../shared/tls.js';
import { parseSize } from '../shared/units.js';
import { ensureCa, gnutlsClientDir, issueCert } from './certs.js';

interface UpArgs {
  'data-dir': string;
  demo: boolean;
  'demo-size': string;
  'mdm-port': number;
  'sdc-port': number;
  'sdc-control-port': number;
  'sdc-mgmt-port': number;
  'sds-port-base': number;
  'sdc-host': string;
  tls: boolean;
  'mgmt-port': number;
  'mgmt-host': string;
}

const PFLEX_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/pflex.js');
const SDS_NAMES = ['sds1', 'sds2', 'sds3'];
const PD = 'pd1';
const POOL = 'pool1';
const DEMO_VOLUME = 'demo';
const SDC_NAME = 'sdc1';
const MGMT_NAME = 'mgmt';
const startTimeoutMs = 60_000;
const stopTimeoutMs = 10_000;

type LogLine = Record<string, unknown>;

/** One child process: its JSON log goes to a file; readiness is a log line. */
class Child {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  private readonly waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  private readonly exitWaiters: Array<(err: Error) => void> = [];
  private readonly log: WriteStream;
  exited = false;
  stopping = false;

  constructor(readonly name: string, args: string[], logDir: string) {
    this.log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
    this.proc = spawn(process.execPath, [PFLEX_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env, detached: true });
    // Own process group: a Ctrl-C reaches only `pflex up`, which stops the children in order.
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      this.log.write(`${line}\n`);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { msg: line };
      }
      if (this.lines.length < 1000) this.lines.push(parsed);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i]!.pred(parsed)) { this.waiters[i]!.resolve(parsed); this.waiters.splice(i, 1); }
      }
    });
    const stderr: string[] = [];
    readline.createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      this.log.write(`${line}\n`);
      stderr.push(line);
      if (stderr.length > 20) stderr.shift();
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      this.log.end();
      const err = new Error(`${name} exited (${code ?? signal}): ${stderr.join('\n')}`);
      for (const w of this.exitWaiters) w(err);
      if (!this.stopping) process.stderr.write(`pflex up: ${name} exited unexpectedly (${code ?? signal}); see ${join(logDir, `${name}.log`)}\n`);
    });
  }

  waitFor(pred: (l: LogLine) => boolean, what: string): Promise<LogLine> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    if (this.exited) return Promise.reject(new Error(`${this.name} exited before ${what}`));
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${this.name}: no "${what}" within ${startTimeoutMs} ms`)), startTimeoutMs);
      this.waiters.push({ pred, resolve: (l) => { clearTimeout(timer); res(l); } });
      this.exitWaiters.push((err) => { clearTimeout(timer); rej(err); });
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.exited) return;
    const done = once(this.proc, 'exit');
    this.proc.kill('SIGTERM');
    const killer = setTimeout(() => this.proc.kill('SIGKILL'), stopTimeoutMs);
    await done;
    clearTimeout(killer);
  }
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** First run: pflex mdm init with a random admin password, kept in DATA/admin-password (0600). */
function initCluster(dataDir: string, mdmDir: string): { password: string; created: boolean } {
  const pwFile = join(dataDir, 'admin-password');
  if (existsSync(join(mdmDir, 'mdm.db'))) {
    const password = existsSync(pwFile) ? readFileSync(pwFile, 'utf8').trim() : '(set at first run; not in admin-password)';
    return { password, created: false };
  }
  const password = randomBytes(12).toString('base64url');
  // --opt=value: a base64url password may start with '-', which yargs would read as flags.
  const r = spawnSync(process.execPath, [PFLEX_BIN, 'mdm', 'init', '--data-dir', mdmDir, `--admin-password=${password}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pflex mdm init failed: ${r.stderr}`);
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  return { password, created: true };
}

async function ensurePool(admin: MdmClient): Promise<number> {
  let pd = (await admin.listPds()).find((p) => p.name === PD);
  pd ??= await admin.createPd(PD);
  let pool = (await admin.listPools({ protectionDomainId: pd.id })).find((p) => p.name === POOL);
  pool ??= await admin.createPool({ protectionDomainId: pd.id, name: POOL, replicationFactor: 2 });
  return pool.id;
}

async function ensureDemo(admin: MdmClient, poolId: number, sdcId: number, sizeBytes: number): Promise<Volume> {
  let v = (await admin.listVolumes({ name: DEMO_VOLUME })).find((x) => x.name === DEMO_VOLUME);
  v ??= await admin.createVolume({ name: DEMO_VOLUME, storagePoolId: poolId, sizeBytes });
  if (!v.mappings.some((m) => m.sdcId === sdcId)) v = await admin.mapVolume(v.id, sdcId, { allowMultiMap: true });
  return v;
}

async function waitForPool(admin: MdmClient, poolId: number): Promise<void> {
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const map = await admin.getPgMap(poolId);
    if (map.ready && map.sds.filter((s) => s.state === 'ACTIVE').length >= 2) return;
    if (Date.now() > deadline) throw new Error('the storage pool did not become ready (are the SDSs up? see the logs)');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Certificates for every component (and an NBD client), made once under DATA/certs; the flags each component gets. */
function ensureCerts(dataDir: string): { dir: string; args: (name: string) => string[]; ca: string; nbdClientDir: string } {
  const dir = join(dataDir, 'certs');
  const ca = ensureCa(dir);
  const sans = { ips: ['127.0.0.1'], dns: ['localhost'] };
  for (const name of ['mdm', ...SDS_NAMES, SDC_NAME, MGMT_NAME, 'nbd-client']) {
    if (ca.created || !existsSync(join(dir, `${name}.crt`))) issueCert(dir, name, sans);
  }
  const nbdClientDir = gnutlsClientDir(dir, 'nbd-client', join(dir, 'nbd-client'));
  return {
    dir, ca: ca.cert, nbdClientDir,
    args: (name) => ['--tls-cert', join(dir, `${name}.crt`), '--tls-key', join(dir, `${name}.key`), '--tls-ca', ca.cert],
  };
}

async function up(a: UpArgs): Promise<void> {
  const dataDir = resolve(a['data-dir']);
  const mdmDir = join(dataDir, 'mdm');
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const { password, created } = initCluster(dataDir, mdmDir);
  const keyFile = join(mdmDir, 'cluster.key');
  const certs = a.tls ? ensureCerts(dataDir) : undefined;
  const tlsArgs = (name: string): string[] => certs?.args(name) ?? [];
  const children: Child[] = [];
  let stopping = false;
  const stopAll = async (code: number): Promise<never> => {
    if (stopping) return new Promise<never>(() => undefined); // the first call exits
    stopping = true;
    say('pflex up: stopping the cluster...');
    const sdc = children.filter((c) => c.name === SDC_NAME || c.name === MGMT_NAME);
    const sds = children.filter((c) => c.name.startsWith('sds'));
    const mdm = children.filter((c) => c.name === 'mdm');
    for (const group of [sdc, sds, mdm]) await Promise.all(group.map((c) => c.stop()));
    say('pflex up: stopped');
    process.exit(code);
  };
  process.on('exit', () => {
    for (const c of children) if (!c.exited) c.proc.kill('SIGKILL');
  });
  // `on`, not `once`: a second Ctrl-C must not kill us before the children are stopped.
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    const mdm = new Child('mdm', ['mdm', 'start', '--data-dir', mdmDir, '--port', String(a['mdm-port']), ...tlsArgs('mdm')], logDir);
    children.push(mdm);
    const listening = await mdm.waitFor((l) => l.msg === 'mdm listening', 'mdm listening');
    const mdmUrl = `${certs ? 'https' : 'http'}://127.0.0.1:${String(listening.port)}`;
    const admin = new MdmClient({ url: mdmUrl, ...(certs ? { ca: readPem(certs.ca) } : {}) });
    await admin.login('admin', password);
    const poolId = await ensurePool(admin);

    const base = a['sds-port-base'];
    const sds = SDS_NAMES.map((name, i) => {
      const port = (delta: number) => String(base === 0 ? 0 : base + delta + i);
      const c = new Child(name, [
        'sds-server', 'start', '--data-dir', join(dataDir, name), '--mdm', mdmUrl, '--cluster-key-file', keyFile, '--name', name,
        '--pd', PD, '--pool', POOL, '--host', '127.0.0.1', '--address', '127.0.0.1',
        '--port', port(0), '--control-port', port(-600), '--mgmt-port', port(-500), ...tlsArgs(name),
      ], logDir);
      children.push(c);
      return c;
    });
    const sdcArgs = [
      'sdc-server', '--mdm', mdmUrl, '--cluster-key-file', keyFile, '--name', SDC_NAME, '--host', a['sdc-host'],
      '--port', String(a['sdc-port']), '--control-port', String(a['sdc-control-port']), '--mgmt-port', String(a['sdc-mgmt-port']),
      ...tlsArgs(SDC_NAME),
    ];
    if (a.demo) sdcArgs.push('--default-volume', DEMO_VOLUME);
    const sdc = new Child(SDC_NAME, sdcArgs, logDir);
    children.push(sdc);
    const mgmt = new Child(MGMT_NAME, [
      'mgmt', 'start', '--mdm', mdmUrl, '--host', a['mgmt-host'], '--port', String(a['mgmt-port']), ...tlsArgs(MGMT_NAME),
    ], logDir);
    children.push(mgmt);
    await Promise.all(sds.map((c) => c.waitFor((l) => l.msg === 'sds registered', 'sds registered')));
    const sdcUp = await sdc.waitFor((l) => l.msg === 'sdc listening', 'sdc listening');
    const sdcReg = await sdc.waitFor((l) => l.msg === 'sdc registered', 'sdc registered');
    await waitForPool(admin, poolId);
    let demo: Volume | undefined;
    if (a.demo) demo = await ensureDemo(admin, poolId, sdcReg.sdcId as number, parseSize(a['demo-size']));
    const nbdPort = String(sdcUp.port);
    const mgmtUp = await mgmt.waitFor((l) => l.msg === 'mgmt listening', 'mgmt listening');
    const mgmtUrl = `${certs ? 'https' : 'http'}://${a['mgmt-host'] === '0.0.0.0' ? '127.0.0.1' : a['mgmt-host']}:${String(mgmtUp.port)}/`;

    say('');
    say(`pflex is up (${created ? 'new cluster' : 'existing cluster'}; data in ${dataDir}, logs in ${logDir})`);
    say(`  MDM:    ${mdmUrl}   admin user "admin", password ${password}`);
    say(`          pflex login --mdm ${mdmUrl}${certs ? ` --ca ${certs.ca}` : ''} --user admin   (then: pflex volume list, pflex sds list, pflex sdc list)`);
    say(`  MGMT:   ${mgmtUrl}   the dashboard (log in as admin)`);
    say(`  SDC:    ${certs ? 'nbds' : 'nbd'}://127.0.0.1:${nbdPort}/  (mgmt ${certs ? "https" : "http"}://127.0.0.1:${String(sdcUp.mgmtPort)}/health, with "authorization: Bearer <token of pflex login>")`);
    if (demo) say(`  volume: ${demo.name} (${demo.sizeBytes} bytes, two copies over ${SDS_NAMES.length} SDSs), the default export`);
    say('');
    say('Attach it (as root):');
    const nbdTlsArgs = certs ? ` -cacertfile ${certs.nbdClientDir}/ca-cert.pem -certfile ${certs.nbdClientDir}/client-cert.pem -keyfile ${certs.nbdClientDir}/client-key.pem` : '';
    say(`  modprobe nbd && nbd-client${nbdTlsArgs} 127.0.0.1 ${nbdPort} /dev/nbd0 && mkfs.ext4 /dev/nbd0 && mount /dev/nbd0 /mnt`);
    say('Without the nbd kernel module:');
    say(`  mkdir -p /tmp/pflex-fuse && nbdfuse /tmp/pflex-fuse/ ${certs ? 'nbds' : 'nbd'}://127.0.0.1:${nbdPort}/${demo ? demo.name : ''}${certs ? `?tls-certificates=${certs.nbdClientDir}` : ''} &`);
    say('  losetup -f --show /tmp/pflex-fuse/nbd   # then mkfs.ext4 / mount the loop device');
    say('Ctrl-C stops everything; the next `pflex up` reuses the data.');
    if (certs) say(`  TLS:    certificates in ${certs.dir}; NBD clients: nbdinfo 'nbds://127.0.0.1:${nbdPort}/?tls-certificates=${certs.nbdClientDir}'`);
    const pids = Object.fromEntries(children.map((c) => [c.name, c.proc.pid ?? null]));
    say(JSON.stringify({ msg: 'pflex up', tls: certs !== undefined, ...(certs ? { ca: certs.ca, nbdClientDir: certs.nbdClientDir } : {}), mdmUrl, mgmtUrl, pids, nbdPort: Number(nbdPort), sdcMgmtPort: sdcUp.mgmtPort, sdcId: sdcReg.sdcId, volume: demo?.name ?? null, dataDir }));

    const mdmExit = once(mdm.proc, 'exit');
    await mdmExit;
    if (!stopping) {
      process.stderr.write('pflex up: the MDM stopped; stopping the cluster\n');
      await stopAll(1);
    }
  } catch (err) {
    process.stderr.write(`pflex up: ${(err as Error).message}\n`);
    await stopAll(1);
  }
}

export const upCommand: CommandModule<object, UpArgs> = {
  command: 'up',
  describe: 'run a whole cluster on this machine (MDM, three SDS, one SDC, the MGMT dashboard) with data under ./data',
  builder: (y: Argv<object>) => y
    .option('data-dir', { type: 'string', default: process.env.PFLEX_DATA_DIR ?? './data', describe: 'where every component keeps its files' })
    .option('demo', { type: 'boolean', default: false, describe: `create a volume "${DEMO_VOLUME}" mapped to the SDC (its default export)` })
    .option('demo-size', { type: 'string', default: '1G', describe: 'size of the demo volume' })
    .option('mdm-port', { type: 'number', default: 8001 })
    .option('sdc-port', { type: 'number', default: 8005, describe: 'NBD port of the SDC' })
    .option('sdc-control-port', { type: 'number', default: 8003 })
    .option('sdc-mgmt-port', { type: 'number', default: 8004 })
    .option('sdc-host', { type: 'string', default: '0.0.0.0', describe: 'address the SDC listens on' })
    .option('tls', { type: 'boolean', default: false, describe: 'TLS 1.3 on every listener, certificates made under DATA/certs on the first run (docs/security.md)' })
    .option('mgmt-port', { type: 'number', default: 8080, describe: 'port of the MGMT dashboard (0 = any free port)' })
    .option('mgmt-host', { type: 'string', default: '127.0.0.1', describe: 'address the dashboard listens on' })
    .option('sds-port-base', { type: 'number', default: 9700, describe: 'data port of sds1 (control = base-600, mgmt = base-500; 0 = any free ports)' }) as Argv<UpArgs>,
  handler: up,
};
