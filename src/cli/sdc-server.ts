import type { Argv, CommandModule } from 'yargs';
import { ERRORS, isPflexError, PflexError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { defaultControlPort, defaultMgmtPort, defaultNbdPort, ioTimeoutMsDefault } from '../sdc/limits.js';
import { SdcNode } from '../sdc/node.js';
import { loadTls } from '../shared/tls.js';
import { tlsFiles, withTlsOptions, type TlsArgs } from './tls-options.js';
import { shutdownTracing, startTracing, withTracing, type TracingArgs } from './tracing.js';

interface Args extends TlsArgs, TracingArgs {
  mdm: string; 'cluster-key-file': string; name: string; guid?: string; host: string; address?: string;
  port: number; 'control-port': number; 'mgmt-port': number; 'default-volume'?: string; 'io-timeout-ms': number; 'replica-reads': boolean;
  'nbd-tls': 'require' | 'optional'; 'nbd-tls-verify-peer': boolean;
}

const env = process.env;
const envInt = (name: string): number | undefined => (env[name] ? Number(env[name]) : undefined);

/** `pflex sdc-server`: runs one SDC (NBD 8005, control 8003, mgmt 8004). */
export const sdcServerCommand: CommandModule<object, Args> = {
  command: 'sdc-server',
  describe: 'run a storage data client: serves the volumes mapped to it over NBD (8005; control 8003, mgmt 8004)',
  builder: (y: Argv<object>) => withTlsOptions(withTracing(y), 'SDC')
    .option('mdm', { type: 'string', default: env.PFLEX_MDM_URL ?? 'http://127.0.0.1:8001', describe: 'MDM URL' })
    .option('cluster-key-file', { type: 'string', demandOption: !env.PFLEX_CLUSTER_KEY_FILE, default: env.PFLEX_CLUSTER_KEY_FILE })
    .option('name', { type: 'string', default: env.PFLEX_SDC_NAME ?? 'sdc1', describe: 'SDC name' })
    .option('guid', { type: 'string', default: env.PFLEX_SDC_GUID, describe: 'identity towards the MDM (default: the name)' })
    .option('host', { type: 'string', default: env.PFLEX_SDC_HOST ?? '0.0.0.0', describe: 'address to listen on' })
    .option('address', { type: 'string', default: env.PFLEX_SDC_ADDRESS, describe: 'address reported to the MDM' })
    .option('port', { type: 'number', default: envInt('PFLEX_SDC_PORT') ?? defaultNbdPort, describe: 'NBD port (0 = any, logged)' })
    .option('control-port', { type: 'number', default: envInt('PFLEX_SDC_CONTROL_PORT') ?? defaultControlPort })
    .option('mgmt-port', { type: 'number', default: envInt('PFLEX_SDC_MGMT_PORT') ?? defaultMgmtPort })
    .option('nbd-tls', { choices: ['require', 'optional'] as const, default: (env.PFLEX_SDC_NBD_TLS as 'require' | 'optional' | undefined) ?? 'require', describe: 'with --tls-cert: NBD clients must STARTTLS, or may stay plain text (PFLEX_SDC_NBD_TLS)' })
    .option('nbd-tls-verify-peer', { type: 'boolean', default: env.PFLEX_SDC_NBD_TLS_VERIFY_PEER === '1', describe: 'with --tls-cert: NBD clients must present a certificate of --tls-ca (PFLEX_SDC_NBD_TLS_VERIFY_PEER=1)' })
    .option('default-volume', { type: 'string', default: env.PFLEX_SDC_DEFAULT_VOLUME, describe: 'volume served for the empty export name (default: the only mapped one)' })
    .option('io-timeout-ms', { type: 'number', default: envInt('PFLEX_SDC_IO_TIMEOUT_MS') ?? ioTimeoutMsDefault, describe: 'an NBD request fails (EIO) after retrying this long' })
    .option('replica-reads', { type: 'boolean', default: env.PFLEX_SDC_REPLICA_READS === '1', describe: 'spread reads over every in-sync replica, not only the primary (docs/sdc.md)' }) as Argv<Args>,
  handler: async (a) => {
    const log = createLogger('sdc').child({ sdc: a.name });
    let node: SdcNode;
    try {
      await startTracing(a, 'pflex-sdc', a.name, log);
      const tls = loadTls(tlsFiles(a));
      if (a['nbd-tls-verify-peer'] && !tls) throw new PflexError('PFLEX_ERR_BAD_REQUEST', '--nbd-tls-verify-peer needs TLS (--tls-cert, --tls-key, --tls-ca)');
      node = new SdcNode({
        name: a.name, ...(a.guid ? { guid: a.guid } : {}), mdmUrl: a.mdm, clusterKeyFile: a['cluster-key-file'], host: a.host,
        ...(a.address ? { address: a.address } : {}), port: a.port, controlPort: a['control-port'], mgmtPort: a['mgmt-port'],
        ...(a['default-volume'] ? { defaultVolume: a['default-volume'] } : {}), ioTimeoutMs: a['io-timeout-ms'], replicaReads: a['replica-reads'], ...(tls ? { tls, nbdTls: a['nbd-tls'], nbdTlsVerifyPeer: a['nbd-tls-verify-peer'] } : {}), log,
      });
      await node.start();
    } catch (err) {
      process.stderr.write(`pflex sdc-server: ${(err as Error).message}\n`);
      process.exit(isPflexError(err) ? ERRORS[err.code].cliExit : 1);
    }
    const shutdown = (signal: string): void => {
      log.info({ signal }, 'sdc stopping');
      void node.stop().then(shutdownTracing).finally(() => process.exit(0));
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  },
};
