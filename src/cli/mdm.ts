import type { Argv, CommandModule } from 'yargs';
import { MDM_CONFIG_DEFAULTS, MDM_DEFAULT_PORT, type MdmConfig } from '../mdm/config.js';
import { initDataDir, startServer } from '../mdm/server.js';
import { isPflexError, ERRORS } from '../shared/errors.js';

interface InitArgs { 'data-dir': string; 'admin-password'?: string; 'admin-name': string; force: boolean }
interface StartArgs {
  'data-dir': string; host: string; port: number; 'cluster-key'?: string;
  'heartbeat-interval-ms'?: number; 'stale-after-missed-beats'?: number; 'down-after-ms'?: number; 'io-token-ttl-ms'?: number;
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
  builder: (y: Argv<object>) => y
    .option('data-dir', { type: 'string', demandOption: true })
    .option('host', { type: 'string', default: process.env.PFLEX_MDM_HOST ?? '127.0.0.1' })
    .option('port', { type: 'number', default: envInt('PFLEX_MDM_PORT') ?? MDM_DEFAULT_PORT, describe: '0 picks a free port (logged)' })
    .option('cluster-key', { type: 'string', describe: 'cluster key file (default DATA_DIR/cluster.key)' })
    .option('heartbeat-interval-ms', { type: 'number', default: envInt('PFLEX_MDM_HEARTBEAT_INTERVAL_MS') })
    .option('stale-after-missed-beats', { type: 'number', default: envInt('PFLEX_MDM_STALE_AFTER_MISSED_BEATS') })
    .option('down-after-ms', { type: 'number', default: envInt('PFLEX_MDM_DOWN_AFTER_MS') })
    .option('io-token-ttl-ms', { type: 'number', default: envInt('PFLEX_MDM_IO_TOKEN_TTL_MS') }) as Argv<StartArgs>,
  handler: async (a) => {
    const config: Partial<MdmConfig> = {};
    if (a['heartbeat-interval-ms'] !== undefined) config.heartbeatIntervalMs = a['heartbeat-interval-ms'];
    if (a['stale-after-missed-beats'] !== undefined) config.staleAfterMissedBeats = a['stale-after-missed-beats'];
    if (a['down-after-ms'] !== undefined) config.downAfterMs = a['down-after-ms'];
    if (a['io-token-ttl-ms'] !== undefined) config.ioTokenTtlMs = a['io-token-ttl-ms'];
    for (const [k, v] of Object.entries(config)) {
      if (!Number.isSafeInteger(v) || (v as number) <= 0) fail(new Error(`${k} must be a positive integer (default ${MDM_CONFIG_DEFAULTS[k as keyof MdmConfig]})`));
    }
    try {
      const { app } = await startServer({
        dataDir: a['data-dir'], host: a.host, port: a.port, config, ...(a['cluster-key'] ? { clusterKeyPath: a['cluster-key'] } : {}),
      });
      const stop = (): void => {
        void app.close().then(() => process.exit(0));
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
