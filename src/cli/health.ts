import type { CommandModule } from 'yargs';
import type { HealthSummary } from '../shared/mdm-client.js';
import { action, print, withCommon, type CommonArgs } from './common.js';
import { keyValues, table } from './format.js';

const counts = (c: { total: number; active: number; stale: number; down: number }) =>
  `${c.total} (${c.active} active, ${c.stale} stale, ${c.down} down)`;

function show(h: HealthSummary): string {
  const head = keyValues([
    ['status', h.status],
    ['SDSs', counts(h.sds)],
    ['SDCs', counts(h.sdcs)],
    ['open alerts', `${h.openAlerts.CRITICAL} critical, ${h.openAlerts.ERROR} error, ${h.openAlerts.WARNING} warning, ${h.openAlerts.INFO} info`],
  ]);
  const pools = table(h.storagePools, [
    { header: 'pool', value: (p) => p.name },
    { header: 'id', value: (p) => p.id, align: 'right' },
    { header: 'used%', value: (p) => p.utilizationPct.toFixed(1), align: 'right' },
    { header: 'pg map', value: (p) => (p.pgMapReady ? 'ready' : 'not ready') },
    { header: 'degraded pgs', value: (p) => p.degradedPgs, align: 'right' },
  ]);
  return `${head}\n\n${pools}`;
}

/** `pflex health`: the cluster summary; exits non-zero unless OK when --check is given. */
export const healthCommand: CommandModule<CommonArgs, CommonArgs & { check?: boolean }> = {
  command: 'health',
  describe: 'cluster health summary',
  builder: (y) => withCommon(y).option('check', { type: 'boolean', describe: 'exit with status 1 unless the cluster is OK' }),
  handler: action<CommonArgs & { check?: boolean }>(async (args, c) => {
    const h = await c.health();
    print(args, h, () => show(h));
    if (args.check && h.status !== 'OK') process.exitCode = 1;
  }),
};
