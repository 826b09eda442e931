import type { Argv, CommandModule } from 'yargs';
import { createLogger } from '../shared/logger.js';
import { ERRORS, isPflexError } from '../shared/errors.js';
import { parseSize } from '../shared/units.js';
import { SdsNode } from '../sds/node.js';
import { defaultControlPort, defaultDataPort, defaultMgmtPort } from '../sds/limits.js';
import { loadTls } from '../shared/tls.js';
import { tlsFiles, withTlsOptions, type TlsArgs } from './tls-options.js';
import { shutdownTracing, startTracing, withTracing, type TracingArgs } from './tracing.js';

interface StartArgs extends TlsArgs, TracingArgs {
  'data-dir': string; mdm: string; 'cluster-key-file': string; name: string; pd: string; pool: string; 'fault-set'?: string;
  address: string; host: string; port: number; 'control-port': number; 'mgmt-port': number; capacity?: string;
}

const env = process.env;
const envInt = (name: string): number | undefined => (env[name] ? Number(env[name]) : undefined);

/**
 * `start`: runs one SDS. Exported on its own so the admin `pflex sds` noun can
 * offer it as `pflex sds start` too.
 */
export const sdsStartCommand: CommandModule<object, StartArgs> = {
  command: 'start',
  describe: 'run a storage data server (data 9700, control 9100, mgmt 9200)',
  builder: (y: Argv<object>) => withTlsOptions(withTracing(y), 'SDS')
    .option('data-dir', { type: 'string', demandOption: !env.PFLEX_SDS_DATA_DIR, default: env.PFLEX_SDS_DATA_DIR, describe: 'storage root (chunks under DIR/chunks)' })
    .option('mdm', { type: 'string', default: env.PFLEX_MDM_URL ?? 'http://127.0.0.1:8001', describe: 'MDM URL' })
    .option('cluster-key-file', { type: 'string', demandOption: !env.PFLEX_CLUSTER_KEY_FILE, default: env.PFLEX_CLUSTER_KEY_FILE })
    .option('name', { type: 'string', demandOption: !env.PFLEX_SDS_NAME, default: env.PFLEX_SDS_NAME, describe: 'unique SDS name' })
    .option('pd', { type: 'string', default: env.PFLEX_SDS_PD ?? 'pd1', describe: 'protection domain name' })
    .option('pool', { type: 'string', default: env.PFLEX_SDS_POOL ?? 'pool1', describe: 'storage pool name' })
    .option('fault-set', { type: 'string', default: env.PFLEX_SDS_FAULT_SET, describe: 'fault set name' })
    .option('address', { type: 'string', default: env.PFLEX_SDS_ADDRESS ?? '127.0.0.1', describe: 'address peers and SDCs connect to' })
    .option('host', { type: 'string', default: env.PFLEX_SDS_HOST ?? '0.0.0.0', describe: 'address to listen on' })
    .option('port', { type: 'number', default: envInt('PFLEX_SDS_PORT') ?? defaultDataPort, describe: 'data port (0 = any, logged)' })
    .option('control-port', { type: 'number', default: envInt('PFLEX_SDS_CONTROL_PORT') ?? defaultControlPort })
    .option('mgmt-port', { type: 'number', default: envInt('PFLEX_SDS_MGMT_PORT') ?? defaultMgmtPort })
    .option('capacity', { type: 'string', default: env.PFLEX_SDS_CAPACITY, describe: 'capacity offered (e.g. 100G; default: file system size)' }) as Argv<StartArgs>,
  handler: async (a) => {
    const log = createLogger('sds').child({ sds: a.name });
    let node: SdsNode;
    try {
      await startTracing(a, 'pflex-sds', a.name, log);
      const tls = loadTls(tlsFiles(a));
      node = new SdsNode({
        name: a.name, dataDir: a['data-dir'], mdmUrl: a.mdm, clusterKeyFile: a['cluster-key-file'], protectionDomain: a.pd,
        storagePool: a.pool, ...(a['fault-set'] ? { faultSet: a['fault-set'] } : {}), address: a.address, host: a.host,
        dataPort: a.port, controlPort: a['control-port'], mgmtPort: a['mgmt-port'],
        ...(a.capacity ? { capacityBytes: parseSize(a.capacity) } : {}), ...(tls ? { tls } : {}), log,
      });
      await node.start();
    } catch (err) {
      process.stderr.write(`pflex sds-server: ${(err as Error).message}\n`);
      process.exit(isPflexError(err) ? ERRORS[err.code].cliExit : 1);
    }
    const shutdown = (signal: string): void => {
      log.info({ signal }, 'sds stopping');
      void node.stop().then(shutdownTracing).finally(() => process.exit(0));
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  },
};

export const sdsServerCommand: CommandModule<object, object> = {
  command: 'sds-server',
  describe: 'storage data server process (pflex sds-server start)',
  builder: (y: Argv<object>) => y.command(sdsStartCommand).demandCommand(1, 'name a command: start'),
  handler: () => undefined,
};
