import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { CLUSTER_KEY_FILE } from '../mdm/config.js';
import { readClusterKey } from '../shared/component-auth.js';
import { ERRORS, isPflexError } from '../shared/errors.js';
import { metricsScrapeToken } from '../shared/scrape-auth.js';

interface TokenArgs { 'data-dir'?: string; 'cluster-key-file'?: string }

const tokenCommand: CommandModule<object, TokenArgs> = {
  command: 'token',
  describe: 'print the Prometheus scrape token of the cluster (Authorization: Bearer <token> on every /metrics)',
  builder: (y: Argv<object>) => y
    .option('data-dir', { type: 'string', describe: 'MDM data dir (its cluster.key is read)' })
    .option('cluster-key-file', { type: 'string', default: process.env.PFLEX_CLUSTER_KEY_FILE, describe: 'cluster key file (or PFLEX_CLUSTER_KEY_FILE)' })
    .check((a) => {
      if (!a['data-dir'] && !a['cluster-key-file']) throw new Error('--data-dir or --cluster-key-file is required');
      return true;
    }) as Argv<TokenArgs>,
  handler: (a) => {
    const file = a['cluster-key-file'] ?? join(a['data-dir']!, CLUSTER_KEY_FILE);
    try {
      process.stdout.write(`${metricsScrapeToken(readClusterKey(file))}\n`);
    } catch (err) {
      process.stderr.write(`pflex metrics token: ${(err as Error).message}\n`);
      process.exitCode = isPflexError(err) ? ERRORS[err.code].cliExit : 1;
    }
  },
};

export const metricsCommand: CommandModule = {
  command: 'metrics <command>',
  describe: 'Prometheus metrics (docs/metrics.md)',
  builder: (y: Argv) => y.command(tokenCommand).demandCommand(1),
  handler: () => undefined,
};
