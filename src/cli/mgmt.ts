import type { Argv, CommandModule } from 'yargs';
import { MGMT_DEFAULT_HOST, MGMT_DEFAULT_PORT } from '../mgmt/limits.js';
import { startMgmt } from '../mgmt/server.js';
import { ERRORS, isPflexError } from '../shared/errors.js';
import { loadTls } from '../shared/tls.js';
import { tlsFiles, withTlsOptions, type TlsArgs } from './tls-options.js';

interface StartArgs extends TlsArgs { mdm: string; 'mdm-ca'?: string; host: string; port: number; 'session-key-file'?: string; 'secure-cookies': boolean }

const env = process.env;
const envInt = (name: string): number | undefined => (env[name] ? Number(env[name]) : undefined);

const startCommand: CommandModule<object, StartArgs> = {
  command: 'start',
  describe: `run the web dashboard (default port ${MGMT_DEFAULT_PORT}); users log in with their MDM accounts`,
  builder: (y: Argv<object>) => withTlsOptions(y, 'MGMT')
    .option('mdm', { type: 'string', default: env.PFLEX_MGMT_MDM ?? env.PFLEX_MDM_URL ?? 'http://127.0.0.1:8001', describe: 'MDM URL (PFLEX_MGMT_MDM)' })
    .option('mdm-ca', { type: 'string', default: env.PFLEX_MGMT_MDM_CA || env.PFLEX_CA || undefined, describe: 'PEM CA of an https MDM (PFLEX_MGMT_MDM_CA; default --tls-ca)' })
    .option('host', { type: 'string', default: env.PFLEX_MGMT_HOST ?? MGMT_DEFAULT_HOST, describe: 'listen address (PFLEX_MGMT_HOST)' })
    .option('port', { type: 'number', default: envInt('PFLEX_MGMT_PORT') ?? MGMT_DEFAULT_PORT, describe: 'listen port, 0 picks a free one (PFLEX_MGMT_PORT)' })
    .option('session-key-file', { type: 'string', default: env.PFLEX_MGMT_SESSION_KEY_FILE, describe: 'file of 64 hex digits sealing the session cookies (default: random per run)' })
    .option('secure-cookies', { type: 'boolean', default: env.PFLEX_MGMT_SECURE_COOKIES === '1', describe: 'mark cookies Secure (the dashboard is reached over HTTPS behind a TLS proxy; implied by --tls-cert)' }) as Argv<StartArgs>,
  handler: async (a) => {
    try {
      if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error(`bad port ${a.port}`);
      const tls = loadTls(tlsFiles(a));
      const { app } = await startMgmt({
        mdmUrl: a.mdm, host: a.host, port: a.port, secureCookies: a['secure-cookies'], ...(tls ? { tls } : {}),
        ...(a['session-key-file'] ? { sessionKeyFile: a['session-key-file'] } : {}),
        ...(a['mdm-ca'] ? { mdmCaFile: a['mdm-ca'] } : {}),
      });
      const stop = (): void => void app.close().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    } catch (err) {
      process.stderr.write(`pflex mgmt: ${(err as Error).message}\n`);
      process.exit(isPflexError(err) ? ERRORS[err.code].cliExit : 1);
    }
  },
};

export const mgmtCommand: CommandModule = {
  command: 'mgmt <command>',
  describe: 'the web dashboard (MGMT)',
  builder: (y: Argv) => y.command(startCommand).demandCommand(1),
  handler: () => undefined,
};
