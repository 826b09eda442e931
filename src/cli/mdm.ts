import type { Argv, CommandModule } from 'yargs';
import { MDM_CONFIG_DEFAULTS, MDM_CONFIG_ZERO_MEANS_OFF, MDM_DEFAULT_PORT, type MdmConfig } from '../mdm/config.js';
import { initDataDir, startServer } from '../mdm/server.js';
import { readFileSync } from 'node:fs';
import { ERRORS, PflexError, isPflexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { shutdownTracing, startTracing, withTracing, type TracingArgs } from './tracing.js';

interface InitArgs { 'data-dir': string; 'admin-password'?: string; 'admin-name': string; force: boolean }
interface StartArgs extends TracingArgs {
  'data-dir': string; host?: string; port?: number; 'cluster-key'?: string; config?: string; 'tls-cert'?: string; 'tls-key'?: string; 'tls-ca'?: string;
  'backup-dir'?: string;
  'heartbeat-interval-ms'?: number; 'stale-after-missed-beats'?: number; 'down-after-ms'?: number; 'io-token-ttl-ms'?: number;
}

/** Settings that have a flag and a PFLEX_MDM_* variable; every MdmConfig key may also come from the config file. */
const TUNABLES: ReadonlyArray<{ key: keyof MdmConfig; flag: keyof StartArgs; env: string }> = [
  { key: 'heartbeatIntervalMs', flag: 'heartbeat-interval-ms', env: 'PFLEX_MDM_HEARTBEAT_INTERVAL_MS' },
  { key: 'staleAfterMissedBeats', flag: 'stale-after-missed-beats', env: 'PFLEX_MDM_STALE_AFTER_MISSED_BEATS' },
  { key: 'downAfterMs', flag: 'down-after-ms', env: 'PFLEX_MDM_DOWN_AFTER_MS' },
  { key: 'ioTokenTtlMs', flag: 'io-token-ttl-ms', env: 'PFLEX_MDM_IO_TOKEN_TTL_MS' },
];

interface ConfigFile extends Partial<MdmConfig> { host?: string; port?: number; clusterKey?: string; tlsCert?: string; tlsKey?: string; tlsCa?: string; backupDir?: string }

function readConfigFile(path: string): ConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(new PflexError('PFLEX_ERR_BAD_REQUEST', `cannot read config file ${path}: ${(err as Error).message}`));
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) fail(new PflexError('PFLEX_ERR_BAD_REQUEST', `${path}: not a JSON object`));
  const known = new Set<string>([...Object.keys(MDM_CONFIG_DEFAULTS), 'host', 'port', 'clusterKey', 'tlsCert', 'tlsKey', 'tlsCa', 'backupDir']);
  for (const k of Object.keys(parsed)) if (!known.has(k)) fail(new PflexError('PFLEX_ERR_BAD_REQUEST', `${path}: unknown setting "${k}"`));
  return parsed as ConfigFile;
}

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`pflex mdm: ${message}\n`);
  process.exit(isPflexError(err) ? ERRORS[err.code].cliExit : 1);
}

/** Flags win over PFLEX_MDM_* environment variables, which win over the defaults. */
function envInt(name: string): number | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : Number(v);
}

const initCommand: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'create a cluster: mdm.db, the cluster key (0600) and the first admin',
  builder: (y: Argv<object>) => y
    .option('data-dir', { type: 'string', demandOption: true, describe: 'directory of mdm.db and cluster.key' })
    .option('admin-password', { type: 'string', describe: 'password of the first admin (or PFLEX_ADMIN_PASSWORD)' })
    .option('admin-name', { type: 'string', default: 'admin' })
    .option('force', { type: 'boolean', default: false, describe: 'destroy an existing cluster in data-dir' }) as Argv<InitArgs>,
  handler: async (a) => {
    const adminPassword = a['admin-password'] ?? process.env.PFLEX_ADMIN_PASSWORD;
    if (!adminPassword) fail(new Error('--admin-password (or PFLEX_ADMIN_PASSWORD) is required'));
    try {
      const r = await initDataDir({ dataDir: a['data-dir'], adminPassword, adminName: a['admin-name'], force: a.force });
      process.stdout.write(`${JSON.stringify({ msg: 'mdm initialized', ...r })}\n`);
    } catch (err) {
      fail(err);
    }
  },
};

const startCommand: CommandModule<object, StartArgs> = {
  command: 'start',
  describe: 'run the MDM (HTTP API) on an initialized data dir',
  builder: (y: Argv<object>) => withTracing(y)
    .option('data-dir', { type: 'string', demandOption: true })
    .option('config', { type: 'string', describe: 'JSON config file (flags > PFLEX_MDM_* env > file > defaults)' })
    .option('host', { type: 'string', describe: 'listen address (PFLEX_MDM_HOST; default 127.0.0.1)' })
    .option('port', { type: 'number', describe: `listen port, 0 picks a free one (PFLEX_MDM_PORT; default ${MDM_DEFAULT_PORT})` })
    .option('cluster-key', { type: 'string', describe: 'cluster key file (default DATA_DIR/cluster.key)' })
    .option('tls-cert', { type: 'string', describe: 'PEM certificate (chain): serve HTTPS, TLS 1.3 (PFLEX_MDM_TLS_CERT)' })
    .option('tls-key', { type: 'string', describe: 'PEM private key of --tls-cert (PFLEX_MDM_TLS_KEY)' })
    .option('tls-ca', { type: 'string', describe: 'PEM cluster CA the SDS control listeners are checked against (PFLEX_MDM_TLS_CA, PFLEX_CA)' })
    .option('backup-dir', { type: 'string', describe: 'directory of backups on this host (PFLEX_MDM_BACKUP_DIR; default DATA_DIR/backups)' })
    .option('heartbeat-interval-ms', { type: 'number' })
    .option('stale-after-missed-beats', { type: 'number' })
    .option('down-after-ms', { type: 'number' })
    .option('io-token-ttl-ms', { type: 'number' }) as Argv<StartArgs>,
  handler: async (a) => {
    const file = a.config ? readConfigFile(a.config) : {};
    const { host: fileHost, port: filePort, clusterKey: fileKey, tlsCert: fileCert, tlsKey: fileTlsKey, tlsCa: fileCa, backupDir: fileBackupDir, ...fileConfig } = file;
    const config: Partial<MdmConfig> = { ...fileConfig };
    for (const t of TUNABLES) {
      const v = (a[t.flag] as number | undefined) ?? envInt(t.env);
      if (v !== undefined) config[t.key] = v;
    }
    for (const [k, v] of Object.entries(config)) {
      const zeroOk = MDM_CONFIG_ZERO_MEANS_OFF.has(k as keyof MdmConfig);
      if (!Number.isSafeInteger(v) || (v as number) < (zeroOk ? 0 : 1)) {
        fail(new PflexError('PFLEX_ERR_BAD_REQUEST', `${k} must be a ${zeroOk ? 'non-negative' : 'positive'} integer, got ${String(v)}`));
      }
    }
    const host = a.host ?? process.env.PFLEX_MDM_HOST ?? fileHost ?? '127.0.0.1';
    const port = a.port ?? envInt('PFLEX_MDM_PORT') ?? filePort ?? MDM_DEFAULT_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(new PflexError('PFLEX_ERR_BAD_REQUEST', `bad port ${port}`));
    const clusterKeyPath = a['cluster-key'] ?? process.env.PFLEX_CLUSTER_KEY ?? fileKey;
    const tlsCertPath = a['tls-cert'] ?? (process.env.PFLEX_MDM_TLS_CERT || undefined) ?? fileCert;
    const tlsKeyPath = a['tls-key'] ?? (process.env.PFLEX_MDM_TLS_KEY || undefined) ?? fileTlsKey;
    const tlsCaPath = a['tls-ca'] ?? (process.env.PFLEX_MDM_TLS_CA || process.env.PFLEX_CA || undefined) ?? fileCa;
    const backupDir = a['backup-dir'] ?? (process.env.PFLEX_MDM_BACKUP_DIR || undefined) ?? fileBackupDir;
    try {
      await startTracing(a, 'pflex-mdm', undefined, createLogger('mdm'));
      const { app } = await startServer({
        dataDir: a['data-dir'], host, port, config, ...(clusterKeyPath ? { clusterKeyPath } : {}),
        tls: { cert: tlsCertPath, key: tlsKeyPath, ca: tlsCaPath }, ...(backupDir ? { backupDir } : {}),
      });
      const stop = (): void => {
        void app.close().then(shutdownTracing).finally(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    } catch (err) {
      fail(err);
    }
  },
};

export const mdmCommand: CommandModule = {
  command: 'mdm <command>',
  describe: 'metadata manager (control plane)',
  builder: (y: Argv) => y.command(initCommand).command(startCommand).demandCommand(1),
  handler: () => undefined,
};
